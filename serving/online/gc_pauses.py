"""Python's garbage collector in the serve worker: every pause timed, and what the worker
holds for good frozen once it is ready.

A full collection (generation 2) walks every container object alive while holding the
GIL, so the model thread and every request wait for it. In a serve worker holding a
300-member marketplace's index and a ranker, each took 320-410 ms (2026-12-06, timed by a
gc callback during the replica's bootstrap and at shutdown), against ~150 ms for a whole
serving-tier request. Python starts one whenever the objects that survived the younger
generations reach a quarter of the old ones (about once a minute at 2.6-5.2 requests/s in
`bench/e2e.py`), and faust forces them at every rebalance (`gc.collect()` in its
consumer's `wait_empty`, once per wait, and in the RocksDB store's `revoke_partitions`).

`gc.freeze()` moves every object alive into a permanent generation that collections skip.
The worker calls `freeze` once, when it is otherwise ready (model loaded, replica caught
up, job states warm), after one last full collection, so that the pause falls before the
first request and later collections walk only what came after. Objects made afterwards
are collected as before; a cycle among the frozen ones is never freed, which for objects
the worker keeps until it stops costs nothing.
"""
from __future__ import annotations

import gc
import time
from typing import Callable

GENERATIONS = (0, 1, 2)


class GcPauses:
    """Every collection's pause by generation (count, total, longest), from the start
    and again from the freeze, and an optional observer per pause (a Prometheus
    histogram: `observe(generation, seconds)`)."""

    def __init__(self, observe: Callable[[int, float], None] | None = None):
        self._observe = observe
        self._started: float | None = None
        self.frozen_objects = 0
        self.at_freeze: dict | None = None  # the figures from the start to the freeze
        self.full_collection_ms: dict | None = None  # a full collection's pause, before and after it
        self._reset()
        gc.callbacks.append(self._on_gc)

    def _reset(self) -> None:
        self.count = dict.fromkeys(GENERATIONS, 0)
        self.total_s = dict.fromkeys(GENERATIONS, 0.0)
        self.longest_s = dict.fromkeys(GENERATIONS, 0.0)

    def _on_gc(self, phase: str, info: dict) -> None:
        # Called by the interpreter around each collection, in whichever thread set it off,
        # with the GIL held: collections never overlap, so no lock.
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:  # registered in the middle of a collection
            return
        seconds, self._started = time.perf_counter() - self._started, None
        generation = info["generation"]
        self.count[generation] += 1
        self.total_s[generation] += seconds
        self.longest_s[generation] = max(self.longest_s[generation], seconds)
        if self._observe is not None:
            self._observe(generation, seconds)

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
        self._reset()
        return self.frozen_objects

    def figures(self) -> dict:
        """What the `/serving/` page shows: objects frozen, and per generation the
        collections since the freeze (since the start before it), their total and
        longest pause in ms."""
        since = {f"gen{g}": {"count": self.count[g], "total_ms": round(1e3 * self.total_s[g], 1),
                             "longest_ms": round(1e3 * self.longest_s[g], 1)} for g in GENERATIONS}
        return {"frozen_objects": self.frozen_objects, "full_collection_ms": self.full_collection_ms,
                "collections": since, "before_freeze": self.at_freeze}

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


def _timed_full_collection() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started
