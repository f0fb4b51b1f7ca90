"""What a serving replica knows besides member state: jobs, job counters, profiles.

Each piece is a pure fold of one event, the same whether the event came from Kafka
(the scoring worker's replica) or from a recorded log (replay):

- `apply_job_event(entry, event)` (from `streams.state`): the job-catalog rule the
  stream worker's `jobs` agent applies too.
- `JobCounters`: each job's past actions by all members (popularity, leak-free at
  any instant because it only ever counts what was folded so far).
"""
from __future__ import annotations

from typing import Mapping

from streams.schemas import MemberActed


# What a job's engagement is worth to the popularity baseline.
POPULARITY_WEIGHTS: Mapping[str, float] = {"view": 0.02, "click": 1.0, "save": 1.0, "apply": 3.0, "dismiss": -0.5}


class JobCounters:
    """job_id -> {action: count}, folded from member actions (views included)."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, event: MemberActed) -> None:
        a = event.payload
        if a.job_id is None:
            return
        row = self._counts.setdefault(a.job_id, {})
        row[a.action.value] = row.get(a.action.value, 0) + 1

    def of(self, job_id: str) -> Mapping[str, int]:
        return self._counts.get(job_id, {})

    def popularity(self, job_id: str) -> float:
        row = self._counts.get(job_id)
        if not row:
            return 0.0
        return sum(POPULARITY_WEIGHTS.get(k, 0.0) * v for k, v in row.items())
