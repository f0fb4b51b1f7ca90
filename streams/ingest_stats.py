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
    first_at: float | None = None
    last_at: float | None = None

    def applied(self, topic: str, produced_at: float | None) -> None:
        now = time.time()
        self.processed[topic] += 1
        self.first_at = self.first_at or now
        self.last_at = now
        if produced_at:
            self.freshness_s.append(now - produced_at)

    def duplicate(self, topic: str) -> None:
        self.duplicates[topic] += 1

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters[topic] += 1

    def reset(self) -> None:
        self.__init__()

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
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


stats = IngestStats()
