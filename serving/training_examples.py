"""Labelled ranker examples from an event log, replayed in event-time order.

Every example's prompt is the member's state *before* the request it belongs to,
built by the same pure `streams.state.apply_member_event` the stream workers run,
so an example can never see its own outcome or anything later.

Impressions and slates. A `view` is an impression: the job was shown. Views of one
member on one surface with no gap over `SLATE_GAP_S` form a slate, i.e. one ranking
request; the slate's prompt prefix is the member state before its first view (what a
ranker serving that request would have known). One slate is one multi-item row.

Labels, per task (the outcome must come from the same member on the same job, after
the impression and within `OUTCOME_WINDOW_S`):
  click    view -> click?                       negatives: views without a click
  save     view -> save?                        negatives: views without a save
  apply    view -> apply?                       negatives: views without an apply
  dismiss  view -> dismiss?                     negatives: views without a dismiss
  search_relevance  view on the search surface, after a search, -> click, save or
           apply (engaged)?  the prompt carries the member's latest query
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
from streams.state import MemberState, apply_member_event

SLATE_GAP_S = 30 * 60
OUTCOME_WINDOW_S = 3 * 86400
VIEW_TASKS = ("click", "save", "apply", "dismiss")
ENGAGED = ("click", "save", "apply")
RANKING_TASKS = ("click", "save", "apply", "search_relevance")  # slates a member sees as a list


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
    slate_id: str
    member_id: str
    surface: str
    start: float
    last: float
    state: MemberState
    query: str | None
    impressions: list[tuple[str, float, dict]] = field(default_factory=list)  # job_id, time, job counts


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
        self.slate_gap_s = slate_gap_s
        self.outcome_window_s = outcome_window_s
        self.jobs: dict[str, Job] = {}  # closed jobs stay: histories still name them
        self.states: dict[str, MemberState] = {}
        self.job_counts: dict[str, dict[str, int]] = defaultdict(dict)
        self._open: dict[tuple[str, str], _Slate] = {}
        self._slates: list[_Slate] = []
        self._applications: list[_Application] = []
        self._app_slate: dict[tuple[str, int], tuple[str, MemberState, float]] = {}
        self._actions: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        self._hires: set[tuple[str, str]] = set()
        self._last_query: dict[str, str] = {}
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
            self._last_query[a.member_id] = a.query or ""
        elif a.job_id is not None:
            if a.action is ActionType.VIEW and before is not None and before.profile is not None:
                self._impression(a.member_id, a.surface.value, a.job_id, t, before, event.event_id)
            elif a.action is not ActionType.VIEW:
                self._actions[(a.member_id, a.job_id)].append((a.action.value, t))
                if a.action is ActionType.APPLY and before is not None and before.profile is not None:
                    self._application(a.member_id, a.job_id, t, before)
            counts = self.job_counts[a.job_id]
            counts[a.action.value] = counts.get(a.action.value, 0) + 1
        self._fold(event)

    def _impression(self, member_id, surface, job_id, t, state, event_id) -> None:
        key = (member_id, surface)
        slate = self._open.get(key)
        if slate is None or t - slate.last > self.slate_gap_s:
            query = self._last_query.get(member_id) if surface == Surface.SEARCH.value else None
            slate = _Slate(f"{member_id}/{surface}/{event_id}", member_id, surface, t, t, state, query)
            self._open[key] = slate
            self._slates.append(slate)
        slate.last = t
        if job_id in self.jobs:
            slate.impressions.append((job_id, t, dict(self.job_counts[job_id])))

    def _application(self, member_id, job_id, t, state) -> None:
        day = int(t // 86400)
        slate_id, slate_state, start = self._app_slate.setdefault(
            (member_id, day), (f"{member_id}/apply/{day}", state, t))
        if job_id in self.jobs:
            self._applications.append(_Application(slate_id, job_id, start, slate_state, dict(self.job_counts[job_id])))

    # -- labelling
    def _acted(self, member_id: str, job_id: str, actions: tuple[str, ...], after: float) -> bool:
        return any(a in actions and after <= t <= after + self.outcome_window_s
                   for a, t in self._actions.get((member_id, job_id), ()))

    def examples(self) -> Iterator[Example]:
        for s in self._slates:
            base = dict(member_id=s.member_id, slate_id=s.slate_id, request_time=s.start,
                        profile=s.state.profile, history=s.state.history, member_counts=dict(s.state.counts))
            for job_id, t, jcounts in s.impressions:
                job = self.jobs[job_id]
                for task in VIEW_TASKS:
                    label = int(self._acted(s.member_id, job_id, (task,), t))
                    yield Example(task=task, label=label, job=job, job_counts=jcounts, **base)
                if s.surface == Surface.SEARCH.value and s.query:
                    label = int(self._acted(s.member_id, job_id, ENGAGED, t))
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
