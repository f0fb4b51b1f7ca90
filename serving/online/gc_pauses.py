"""Python's garbage collector in the serve worker: every pause timed, and what the worker
holds for good frozen once it is ready.

A full collection (generation 2) walks every container object alive while holding the
GIL, so the model thread and every request wait for it. In a serve worker holding a
300-member marketplace's index and a ranker, each took 320-410 ms (2026-12-06, timed by a
gc callback during the replica's bootstrap and at shutdown), against ~150 ms for a whole
serving-tier request. Python starts one whenever the objects that survived the younger
generations reach a quarter of the old ones: with ~620,000 old ones that is rare (none in
two timed minutes of `bench/e2e.py`) but costs a whole walk when it comes. faust forces
them too, at every rebalance (`gc.collect()` in its consumer's `wait_empty`, once per
wait, and in the RocksDB store's `revoke_partitions`). After the freeze few objects are
old, so a full collection comes about once a minute under load, over only what came
after the freeze (16-36 ms in those runs).

`gc.freeze()` moves every object alive into a permanent generation that collections skip.
The worker calls `freeze` once, when it is otherwise ready (model loaded, replica caught
up, job states warm), after one last full collection, so that the pause falls before the
first request and later collections walk only what came after. Objects made afterwards
are collected as before; a cycle among the frozen ones is never freed, which for objects
the worker keeps until it stops costs nothing.
"""
from __future__ import annotations

import bisect
import gc
import time

GENERATIONS = (0, 1, 2)
# Seconds: a young collection takes under a millisecond, a full one over a large heap ~0.4 s.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses:
    """Every collection's pause by generation: count, total and longest from the start,
    and again from the freeze (`figures`), and a histogram over the process's life
    (`histogram`, which /metrics reads at each scrape).

    The callback only adds to plain numbers. It runs in whichever thread set the
    collection off, maybe inside a lock that thread holds: prometheus-client's metrics
    take a non-reentrant lock and allocate under it, so observing one from here could
    deadlock a /metrics scrape (a collection set off inside that lock, its callback
    waiting on the same lock)."""

    def __init__(self):
        self._started: float | None = None
        self.frozen_objects = 0
        self.at_freeze: dict | None = None  # the figures from the start to the freeze
        self.full_collection_ms: dict | None = None  # a full collection's pause, before and after it
        # Over the process's life; the figures since the freeze subtract what they were then.
        self._in_bucket = {g: [0] * (len(BUCKETS) + 1) for g in GENERATIONS}  # the last: above every bound
        self._sum_s = dict.fromkeys(GENERATIONS, 0.0)
        self._count_then = dict.fromkeys(GENERATIONS, 0)
        self._sum_then = dict.fromkeys(GENERATIONS, 0.0)
        self._longest_s = dict.fromkeys(GENERATIONS, 0.0)  # since the freeze (the start before it)
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        # With the GIL held, and collections never overlap: no lock (and none may be taken).
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:  # registered in the middle of a collection
            return
        seconds, self._started = time.perf_counter() - self._started, None
        generation = info["generation"]
        self._in_bucket[generation][bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum_s[generation] += seconds
        self._longest_s[generation] = max(self._longest_s[generation], seconds)

    def histogram(self, generation: int) -> tuple[list[tuple[str, int]], float]:
        """Prometheus' cumulative buckets (upper bound, pauses at or under it, "+Inf"
        last) and the sum of pauses in seconds, over the process's life."""
        counts, running = [], 0
        for bound, n in zip([*map(str, BUCKETS), "+Inf"], self._in_bucket[generation]):
            running += n
            counts.append((bound, running))
        return counts, self._sum_s[generation]

    def freeze(self) -> int:
        """One full collection, every object alive into the permanent generation, then
        one more full collection to time what a full one costs now; how many objects
        that froze. The collections of the freeze itself are not counted after it."""
        before = _timed_full_collection()
        self.at_freeze = self.figures()["collections"]
        gc.freeze()
        self.frozen_objects = gc.get_freeze_count()
        after = _timed_full_collection()
        self.full_collection_ms = {"before_freeze": round(1e3 * before, 2), "after_freeze": round(1e3 * after, 2)}
        for g in GENERATIONS:
            self._count_then[g], self._sum_then[g], self._longest_s[g] = sum(self._in_bucket[g]), self._sum_s[g], 0.0
        return self.frozen_objects

    def figures(self) -> dict:
        """What the `/serving/` page shows: objects frozen, and per generation the
        collections since the freeze (since the start before it), their total and
        longest pause in ms."""
        since = {f"gen{g}": {"count": sum(self._in_bucket[g]) - self._count_then[g],
                             "total_ms": round(1e3 * (self._sum_s[g] - self._sum_then[g]), 1),
                             "longest_ms": round(1e3 * self._longest_s[g], 1)} for g in GENERATIONS}
        return {"frozen_objects": self.frozen_objects, "full_collection_ms": self.full_collection_ms,
                "collections": since, "before_freeze": self.at_freeze}

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


def _timed_full_collection() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started
