"""The scoring service's Prometheus metrics (`GET /metrics`, prometheus-client).

One registry per service, not the process-wide default, so two services in one
process (tests, a side-by-side benchmark) never collide and `/metrics` shows only
this service's figures:

    hirestream_score_requests_total{via, status}    requests answered: via kafka|http,
                                                    status ok|partial|expired|shed|error
    hirestream_score_degraded_total{reason}          partial answers: overload (fewer
                                                    candidates) | deadline (index order)
    hirestream_score_stage_seconds{stage}            per stage: state, retrieve, queue,
                                                    rank, total
    hirestream_score_batch_members                   members per model call
    hirestream_scoring_queue_depth                   requests admitted and unanswered
    hirestream_model_info{model_id}                  the model that answers
    hirestream_consumer_lag_messages{consumer}       index_replica, score_requests
    hirestream_ready                                 1 when /readyz would say ready
    hirestream_gc_pause_seconds{generation}          Python's garbage collector's pauses
                                                    (serving/online/gc_pauses.py)
"""
from __future__ import annotations

import math
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.online.gc_pauses import GENERATIONS

# Seconds: a BM25 request takes milliseconds, an LM ranker on a CPU seconds.
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    def __init__(self, model_id: str, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("hirestream_score_requests", "Score requests answered, by path and status",
                                ["via", "status"], registry=r)
        self.degraded = Counter("hirestream_score_degraded", "Partial answers, by why they were partial",
                                ["reason"], registry=r)
        self.stage = Histogram("hirestream_score_stage_seconds", "Time per stage of the scoring path",
                               ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.batch = Histogram("hirestream_score_batch_members", "Members scored in one model call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.queue_depth = Gauge("hirestream_scoring_queue_depth", "Requests admitted and not yet answered",
                                 registry=r)
        self.model = Info("hirestream_model", "The model that ranks", registry=r)
        self.model.info({"model_id": model_id})
        self.lag = Gauge("hirestream_consumer_lag_messages", "Messages a consumer is behind its partitions' ends",
                         ["consumer"], registry=r)
        self.ready = Gauge("hirestream_ready", "1 when the service is ready to answer", registry=r)

    def watch_gc(self, pauses) -> None:
        """`hirestream_gc_pause_seconds{generation}` from a `GcPauses`, read at each
        scrape (its callback never touches a metric: see serving/online/gc_pauses.py)."""
        self.registry.register(_GcPauseCollector(pauses))

    def watch(self, gauge: Gauge, read: Callable[[], float | int | None]) -> None:
        """Read `gauge` from `read` at every scrape (None reads as NaN: not known yet)."""
        gauge.set_function(lambda: _number(read()))

    def watch_lag(self, consumer: str, read: Callable[[], int | None]) -> None:
        self.watch(self.lag.labels(consumer=consumer), read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _GcPauseCollector:
    def __init__(self, pauses):
        self.pauses = pauses

    def collect(self):
        family = HistogramMetricFamily("hirestream_gc_pause_seconds", "Python garbage collector pauses, by generation",
                                       labels=["generation"])
        for generation in GENERATIONS:
            buckets, total = self.pauses.histogram(generation)
            family.add_metric([str(generation)], buckets, sum_value=total)
        yield family


def _number(value: float | int | bool | None) -> float:
    return math.nan if value is None else float(value)
