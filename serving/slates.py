"""Slates and outcomes: the one labelling of what a member was shown and what followed.

Training examples (`serving.training.training_examples`) and replay (`serving.evaluation.replay`) both
read the log through these classes, so a model is evaluated on exactly the labels
it was trained on.

Views are grouped into slates: a member's views on one surface with no gap over
`SLATE_GAP_S` form a slate, i.e. one ranking request; a slate on the search surface
carries the member's latest search query. What a slate's candidates are depends on
what the log holds (`SLATE_SOURCES`):

- impressions: the log's views are what the member was *shown* (the simulator, a
  recorded serving log: clicks, saves and dismisses follow them). The slate's
  candidates are the shown jobs.
- views: the log's views are the member *opening* a job (a job board's export: no
  impressions, so no clicks either). Shown jobs are unknown, and the viewed jobs
  alone would make tiny, all-positive slates; the candidates are instead the jobs
  open when the slate starts (`views_candidates`), and the viewed ones are positives.

`slate_source(...)` picks one from the log ("auto": impressions when the log has any
click, save or dismiss). A candidate is labelled for a task by the member's own
actions on that job after it was shown (views: after the slate started) and within
`OUTCOME_WINDOW_S` (`TASK_ACTIONS`: search relevance is any engagement; `view` is a
view, i.e. the next views; `dwell` a view that lasted `DWELL_S` or more).
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

SLATE_GAP_S = 30 * 60
OUTCOME_WINDOW_S = 3 * 86400
VIEW_TASKS = ("click", "save", "apply", "dismiss")
ENGAGED = ("click", "save", "apply")
RANKING_TASKS = ("click", "save", "apply", "search_relevance")  # slates a member sees as a list
DWELL_S = 30.0  # a view at least this long is engaged: a positive of the `dwell` task
NEXT_VIEW_TASKS = ("view", "dwell")  # what a views-only log can label
# The actions that make an impression a positive of each task.
TASK_ACTIONS: dict[str, tuple[str, ...]] = {**{t: (t,) for t in VIEW_TASKS}, "search_relevance": ENGAGED,
                                            "view": ("view",), "dwell": ("dwell",)}
SEARCH_SURFACE = "search"
SLATE_SOURCES = ("impressions", "views")
IMPRESSION_EVIDENCE = ("click", "save", "dismiss")  # actions only a shown list allows


def slate_source(wanted: str, actions_seen: Iterable[str]) -> str:
    """"impressions" or "views" (the module docstring); `wanted` "auto" decides by
    whether the log has any action that only follows an impression."""
    if wanted in SLATE_SOURCES:
        return wanted
    if wanted != "auto":
        raise ValueError(f"slates must be one of {SLATE_SOURCES} or 'auto', not {wanted!r}")
    return "impressions" if set(IMPRESSION_EVIDENCE) & set(actions_seen) else "views"


def view_outcomes(dwell_s: float | None, dwell_min: float = DWELL_S) -> tuple[str, ...]:
    """The outcomes one view is: always a view, and a dwell when it lasted long enough
    (an open-ended view, dwell unknown, is not)."""
    return ("view", "dwell") if dwell_s is not None and dwell_s >= dwell_min else ("view",)


def sample_candidates(open_jobs: list[str], is_open: Callable[[str], bool], positives: Iterable[str], n: int,
                      seed: str) -> list[str]:
    """A views slate's candidates: every open job if there are at most `n`, else the
    open positives and a seeded sample of the other open jobs, `n` in all (sampled
    metrics: positives are always among them). Sorted, so scorers see one order."""
    if len(open_jobs) <= n:
        return sorted(open_jobs)
    keep = sorted({j for j in positives if is_open(j)})[:n]
    chosen = set(keep)
    rng = random.Random(seed)
    pool = rng.sample(open_jobs, min(len(open_jobs), n + len(keep)))  # enough to skip the positives
    others = [j for j in pool if j not in chosen][:n - len(keep)]
    return sorted(keep + others)


@dataclass
class Slate:
    """One ranking request as the log shows it: `shown` are its job ids in first-view
    order, `shown_at` the time each was first shown."""

    slate_id: str
    member_id: str
    surface: str
    start: float
    last: float
    query: str | None
    shown: list[str] = field(default_factory=list)
    shown_at: dict[str, float] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        """The ranking request the slate stands for (replay's evaluation points)."""
        return self.slate_id


class SlateTracker:
    """Groups views into slates as events arrive in time order."""

    def __init__(self, gap_s: float = SLATE_GAP_S):
        self.gap_s = gap_s
        self._open: dict[tuple[str, str], Slate] = {}
        self._last_query: dict[str, str] = {}

    def searched(self, member_id: str, query: str | None) -> None:
        self._last_query[member_id] = query or ""

    def view(self, member_id: str, surface: str, job_id: str, t: float, event_id: str) -> tuple[Slate, bool]:
        """The slate this view belongs to, and whether the view opened it."""
        key = (member_id, surface)
        slate = self._open.get(key)
        opened = slate is None or t - slate.last > self.gap_s
        if opened:
            query = self._last_query.get(member_id) if surface == SEARCH_SURFACE else None
            slate = Slate(f"{member_id}/{surface}/{event_id}", member_id, surface, t, t, query)
            self._open[key] = slate
        slate.last = t
        if job_id not in slate.shown_at:
            slate.shown.append(job_id)
            slate.shown_at[job_id] = t
        return slate, opened


class Outcomes:
    """Every member's actions on every job, with their times: the labels' source."""

    def __init__(self, window_s: float = OUTCOME_WINDOW_S):
        self.window_s = window_s
        self._on_job: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        self._by_member: dict[str, list[tuple[str, str, float]]] = defaultdict(list)

    def add(self, member_id: str, job_id: str, action: str, t: float) -> None:
        self._on_job[(member_id, job_id)].append((action, t))
        self._by_member[member_id].append((action, job_id, t))

    def acted(self, member_id: str, job_id: str, actions: tuple[str, ...], after: float,
              window_s: float | None = None) -> bool:
        window = self.window_s if window_s is None else window_s
        return any(a in actions and after <= t <= after + window for a, t in self._on_job.get((member_id, job_id), ()))

    def label(self, task: str, member_id: str, job_id: str, shown_at: float) -> int:
        """1 if the member did what makes `task` positive after the job was shown."""
        return int(self.acted(member_id, job_id, TASK_ACTIONS[task], shown_at))

    def jobs_with(self, member_id: str, action: str, start: float, window_s: float | None = None) -> set[str]:
        """Jobs the member did `action` to in the window after `start`."""
        window = self.window_s if window_s is None else window_s
        return {j for a, j, t in self._by_member.get(member_id, ()) if a == action and start <= t <= start + window}
