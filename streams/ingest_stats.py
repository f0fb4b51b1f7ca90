"""What the worker measures about itself: events processed, duplicates ignored,
dead letters, and freshness (produced -> visible in the table)."""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class IngestStats:
    processed: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    dead_letters: Counter = field(default_factory=Counter)
    # Freshness samples in seconds: now (after the table write) - producer timestamp.
    freshness_s: deque = field(default_factory=lambda: deque(maxlen=200_000))
    applied_at: deque = field(default_factory=lambda: deque(maxlen=200_000))  # when each sample was taken
    first_at: float | None = None
    last_at: float | None = None

    def applied(self, topic: str, produced_at: float | None) -> None:
        now = time.time()
        self.processed[topic] += 1
        self.first_at = self.first_at or now
        self.last_at = now
        if produced_at:
            self.freshness_s.append(now - produced_at)
            self.applied_at.append(now)

    def duplicate(self, topic: str) -> None:
        self.duplicates[topic] += 1

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters[topic] += 1

    def reset(self) -> None:
        self.__init__()

    WINDOW_S = 10.0

    def worst_window_p99(self, fresh: np.ndarray) -> float | None:
        """The highest freshness p99 of any `WINDOW_S` window of apply time: a stall
        (the worker not reading for a while, then catching up) shows here even when it
        is too short or too rare to move the whole run's p99."""
        if not fresh.size:
            return None
        at = np.fromiter(self.applied_at, dtype=np.float64)
        window = ((at - at[0]) // self.WINDOW_S).astype(np.int64)
        return max(float(np.percentile(fresh[window == w], 99)) for w in np.unique(window))

    def snapshot(self) -> dict:
        fresh = np.fromiter(self.freshness_s, dtype=np.float64)
        total = sum(self.processed.values())
        span = (self.last_at - self.first_at) if self.first_at and self.last_at else 0.0
        return {
            "processed": dict(self.processed),
            "processed_total": total,
            "duplicates": dict(self.duplicates),
            "dead_letters": dict(self.dead_letters),
            "events_per_s": total / span if span > 0 else 0.0,
            "freshness_p50_s": float(np.percentile(fresh, 50)) if fresh.size else None,
            "freshness_p99_s": float(np.percentile(fresh, 99)) if fresh.size else None,
            "freshness_worst_window_p99_s": self.worst_window_p99(fresh),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


stats = IngestStats()
