"""Job states computed before requests need them (a ranker that reads jobs alone).

A jobs-alone checkpoint (`models.job_states`) computes each job body's keys and values
once and keeps them. Paid inside a request, that is ~50 ms a job on 2 cores, most of a
ranking. The warmer pays it between requests instead.

Jobs reach a serving worker's replica through the stream worker's job-catalog
changelog, after the worker has applied them: a freshly started worker's replica is
caught up (with an empty changelog) long before its catalog holds the jobs posted
before the start. So the warmer does not warm a snapshot once; it follows the catalog.
Each round takes the open jobs whose current entry (its event id: a posting or an
edit) has no states yet, a few at a time; after a round that found nothing pending,
the catalog is scanned again only once its writer has applied something since. It stops where
the cache's byte budget would be full, since past that point warming one job evicts
another.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from streams.schemas import Job

log = logging.getLogger(__name__)

FULL_SHARE = 0.9  # stop warming once the cache holds this share of its byte budget


class JobStateWarmer:
    """Follows `catalog` (job id -> entry with `job`, `open`, `event_id`) and computes
    each open job's states once per entry with `warm(jobs)` (`RankerScorer.warm`)."""

    def __init__(self, catalog: dict, warm: Callable[[Sequence[Job]], int], states,
                 version: Callable[[], int] | None = None):
        self.catalog = catalog
        self._version = version  # grows with every write to the catalog (MatchingEngine.applied)
        self._scanned: int | None = None  # the version at a scan that found nothing pending
        self._warm = warm
        self.states = states  # models.job_states.JobStates: its bytes and budget
        self._done: dict[str, str] = {}  # job id -> event id of the entry whose states were computed
        self.jobs = 0
        self.seconds = 0.0
        self._said_full = False

    def pending(self, limit: int) -> list[tuple[str, str, Job]]:
        """Up to `limit` open jobs whose current entry has no states yet, oldest posting first."""
        if self.full:
            return []
        version = self._version() if self._version is not None else None
        if version is not None and version == self._scanned:
            return []
        out = []
        for job_id, entry in list(self.catalog.items()):  # the replica thread writes the catalog
            if not entry.open:
                self._done.pop(job_id, None)  # closed: a reopening is a new entry
            elif entry.job is not None and self._done.get(job_id) != entry.event_id:
                out.append((job_id, entry.event_id, entry.job))
                if len(out) == limit:
                    break
        if not out:
            self._scanned = version
        return out

    @property
    def full(self) -> bool:
        full = self.states.bytes >= FULL_SHARE * self.states.max_bytes
        if full and not self._said_full:
            log.warning("job-state cache at %.0f of its %.0f MiB: the remaining jobs are computed at their first "
                        "request (HIRESTREAM_SERVING_JOB_STATE_MB)", self.states.bytes / 2 ** 20,
                        self.states.max_bytes / 2 ** 20)
            self._said_full = True
        return full

    def warm(self, batch: Sequence[tuple[str, str, Job]]) -> int:
        """Compute these jobs' states (on the model thread) and mark their entries done,
        even if that failed: a job that cannot be computed is then tried once more, at
        its first request, rather than every round."""
        started = time.perf_counter()
        try:
            self._warm([job for _, _, job in batch])
            self.jobs += len(batch)
        finally:
            for job_id, event_id, _ in batch:
                self._done[job_id] = event_id
            self.seconds += time.perf_counter() - started
        return len(batch)

    def figures(self) -> dict:
        return {"jobs": self.jobs, "seconds": round(self.seconds, 1)}
