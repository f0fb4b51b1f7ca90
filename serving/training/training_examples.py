"""Labelled ranker examples from an event log, replayed in event-time order.

Every example's prompt is the member's state *before* the request it belongs to,
built by the same pure `streams.state.apply_member_event` the stream workers run,
so an example can never see its own outcome or anything later.

Impressions, slates and labels are `serving.slates`' (the one labelling, shared with
replay): a slate is one ranking request, and its prompt prefix is the member state
before its first view (what a ranker serving that request would have known). One
slate is one multi-item row. Tasks per impression: click, save, apply, dismiss (did
the member do it after the job was shown, within the outcome window?) and, on the
search surface after a search, search_relevance (any engagement; the prompt carries
the latest query). Each job counts once per slate, at its first view.
  hire     apply -> hire confirmed for that member and job? (qualified-for); the
           slate is the member's applications of one day, prefix = state before the first

Examples also carry leak-free counters known at request time (the job's past views,
clicks, applies...), which is what the popularity and feature baselines need.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from models.verbalizer import Interaction
from streams.schemas import (
    ActionType,
    HireConfirmed,
    Job,
    JobClosedEvent,
    JobPosted,
    JobUpdated,
    MemberActed,
    MemberProfile,
    MemberUpserted,
    Surface,
)
from serving.slates import (  # noqa: F401  (RANKING_TASKS and ENGAGED: re-exported for the benches)
    ENGAGED,
    OUTCOME_WINDOW_S,
    RANKING_TASKS,
    SLATE_GAP_S,
    VIEW_TASKS,
    Outcomes,
    Slate,
    SlateTracker,
)
from streams.state import MemberState, apply_member_event



@dataclass(frozen=True)
class Example:
    """One labelled (member state, job, task) triple."""

    task: str
    label: int
    member_id: str
    job: Job
    slate_id: str  # examples of one slate share a prompt prefix
    request_time: float  # epoch seconds: the state below is as of this instant
    profile: MemberProfile
    history: tuple[Interaction, ...]
    member_counts: dict = field(default_factory=dict, compare=False)  # member's past actions
    job_counts: dict = field(default_factory=dict, compare=False)  # job's past actions (all members)
    query: str | None = None

    @property
    def n_past_interactions(self) -> int:
        return sum(v for k, v in self.member_counts.items() if k != "view")

    @property
    def is_cold_start(self) -> bool:
        """Fewer than 3 past interactions besides views: the profile is most of what we know."""
        return self.n_past_interactions < 3


@dataclass
class _Slate:
    slate: Slate
    state: MemberState  # before the slate's first view
    job_counts: dict[str, dict] = field(default_factory=dict)  # per job, as of its first view


@dataclass
class _Application:
    slate_id: str
    job_id: str
    time: float  # the slate's first application: the state below is as of then
    state: MemberState
    job_counts: dict


class ExampleBuilder:
    """Folds events in time order; `examples()` labels what it saw.

    Feed it every event (`add`); out-of-order input is refused, because an example
    built from a state that already contains its future would be silently wrong.
    """

    def __init__(self, slate_gap_s: float = SLATE_GAP_S, outcome_window_s: float = OUTCOME_WINDOW_S):
        self.jobs: dict[str, Job] = {}  # closed jobs stay: histories still name them
        self.states: dict[str, MemberState] = {}
        self.job_counts: dict[str, dict[str, int]] = defaultdict(dict)
        self._tracker = SlateTracker(slate_gap_s)
        self._outcomes = Outcomes(outcome_window_s)
        self._slates: dict[str, _Slate] = {}  # by slate id, in the order they opened
        self._applications: list[_Application] = []
        self._app_slate: dict[tuple[str, int], tuple[str, MemberState, float]] = {}
        self._hires: set[tuple[str, str]] = set()
        self._last_time = float("-inf")

    # -- folding
    def add(self, event) -> None:
        t = event.event_time.timestamp()
        if t < self._last_time:
            raise ValueError(
                f"event {event.event_id} at {event.event_time.isoformat()} is older than one already "
                "replayed; examples must be built in event-time order"
            )
        self._last_time = t
        if isinstance(event, (JobPosted, JobUpdated)):
            self.jobs[event.payload.job_id] = event.payload
        elif isinstance(event, JobClosedEvent):
            pass  # keep the job: past impressions and histories refer to it
        elif isinstance(event, MemberActed):
            self._on_action(event, t)
        elif isinstance(event, (MemberUpserted, HireConfirmed)):
            if isinstance(event, HireConfirmed):
                self._hires.add((event.payload.member_id, event.payload.job_id))
            self._fold(event)

    def _fold(self, event) -> None:
        mid = event.payload.member_id
        self.states[mid] = apply_member_event(self.states.get(mid), event, self.jobs.get)

    def _on_action(self, event: MemberActed, t: float) -> None:
        a = event.payload
        before = self.states.get(a.member_id)
        if a.action is ActionType.SEARCH:
            self._tracker.searched(a.member_id, a.query)
        elif a.job_id is not None:
            if a.action is ActionType.VIEW and before is not None and before.profile is not None:
                self._impression(a.member_id, a.surface.value, a.job_id, t, before, event.event_id)
            elif a.action is not ActionType.VIEW:
                self._outcomes.add(a.member_id, a.job_id, a.action.value, t)
                if a.action is ActionType.APPLY and before is not None and before.profile is not None:
                    self._application(a.member_id, a.job_id, t, before)
            counts = self.job_counts[a.job_id]
            counts[a.action.value] = counts.get(a.action.value, 0) + 1
        self._fold(event)

    def _impression(self, member_id, surface, job_id, t, state, event_id) -> None:
        slate, opened = self._tracker.view(member_id, surface, job_id, t, event_id)
        if opened:
            self._slates[slate.slate_id] = _Slate(slate, state)
        if job_id in self.jobs:  # a job never posted in this log has nothing to verbalize
            self._slates[slate.slate_id].job_counts.setdefault(job_id, dict(self.job_counts[job_id]))

    def _application(self, member_id, job_id, t, state) -> None:
        day = int(t // 86400)
        slate_id, slate_state, start = self._app_slate.setdefault(
            (member_id, day), (f"{member_id}/apply/{day}", state, t))
        if job_id in self.jobs:
            self._applications.append(_Application(slate_id, job_id, start, slate_state, dict(self.job_counts[job_id])))

    # -- labelling
    def examples(self) -> Iterator[Example]:
        for row in self._slates.values():
            s, state = row.slate, row.state
            base = dict(member_id=s.member_id, slate_id=s.slate_id, request_time=s.start,
                        profile=state.profile, history=state.history, member_counts=dict(state.counts))
            for job_id in (j for j in s.shown if j in row.job_counts):
                job, jcounts, shown_at = self.jobs[job_id], row.job_counts[job_id], s.shown_at[job_id]
                for task in VIEW_TASKS:
                    label = self._outcomes.label(task, s.member_id, job_id, shown_at)
                    yield Example(task=task, label=label, job=job, job_counts=jcounts, **base)
                if s.surface == Surface.SEARCH.value and s.query:
                    label = self._outcomes.label("search_relevance", s.member_id, job_id, shown_at)
                    yield Example(task="search_relevance", label=label, job=job, job_counts=jcounts,
                                  query=s.query, **base)
        for a in self._applications:
            yield Example(
                task="hire", label=int((a.state.member_id, a.job_id) in self._hires), member_id=a.state.member_id,
                job=self.jobs[a.job_id], slate_id=a.slate_id, request_time=a.time,
                profile=a.state.profile, history=a.state.history, member_counts=dict(a.state.counts),
                job_counts=a.job_counts,
            )


def build_examples(events: Iterable, **kwargs) -> list[Example]:
    builder = ExampleBuilder(**kwargs)
    for event in events:
        builder.add(event)
    return list(builder.examples())


def split_by_time(examples: Iterable[Example], cutoff: float) -> tuple[list[Example], list[Example]]:
    """Train: requests before `cutoff` (epoch s); held out: requests at or after it."""
    train, held_out = [], []
    for ex in examples:
        (train if ex.request_time < cutoff else held_out).append(ex)
    return train, held_out
