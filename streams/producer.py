"""Producing events to Kafka with kafka-python: a Python API and the file loader.

Every event is validated before it is sent, so a malformed line is reported and never
reaches a topic. Keys follow the map (member_id on member-keyed topics), and
kafka-python's default murmur2 partitioner matches Java clients, so a member's events
land on the same partition whichever topic carries them (co-partitioning).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from streams import kafka_clients
from streams.bounds import EventBounds, parse_bounded
from streams.schemas import Envelope, InvalidEvent, TOPIC_OF_TYPE, key_of, serialize, topic_of


@dataclass
class ProduceReport:
    sent: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    by_topic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def make_producer(bootstrap: str, **overrides):
    """A kafka-python producer with the project's delivery guarantees (and, through
    streams.kafka_clients, the cluster's security settings)."""
    config = dict(
        # An event the producer reports as sent is on every in-sync replica
        # (`min.insync.replicas` of them on a cluster, infra/cluster.py).
        acks="all",
        # Retries (kafka-python's default: until `delivery_timeout_ms`, 2 min) never
        # write a record twice or out of order: the broker drops a retried batch it
        # already has. Said explicitly, so a conflicting override raises instead of
        # quietly turning idempotence off (kafka-python's behaviour for a default).
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
        max_in_flight_requests_per_connection=1,  # keep per-partition order on retry
    )
    config.update(overrides)
    return kafka_clients.producer(bootstrap, **config)


class EventProducer:
    """Send validated events; usable as a context manager that flushes on exit."""

    def __init__(self, bootstrap: str, **overrides):
        self._producer = make_producer(bootstrap, **overrides)

    def send(self, event: Envelope, topic: str | None = None) -> None:
        topic = topic or topic_of(event)
        self._producer.send(topic, key=key_of(event).encode(), value=serialize(event))

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are (used to prove bad input reaches the dead-letter path)."""
        self._producer.send(topic, key=key, value=value)

    def flush(self, timeout: float | None = 60.0) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def produce_events(events: Iterable[Envelope], bootstrap: str, *, rate: float | None = None,
                   progress: str | None = None, total: int | None = None,
                   report: ProduceReport | None = None, **overrides) -> ProduceReport:
    """Send already-typed events (for example, straight from the simulator).

    rate: events per second to hold (in small bursts), None for as fast as possible.
    progress: a label to show a progress bar under.
    report: one to add to (the file loader's, which already holds its rejects)."""
    from tqdm import tqdm

    report = report if report is not None else ProduceReport()
    start = time.perf_counter()
    with EventProducer(bootstrap, **overrides) as producer:
        for i, event in enumerate(tqdm(events, desc=progress, total=total, unit="ev", disable=True if progress is None else None)):
            if rate and i % 50 == 0:
                ahead = i / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the producer, not synchronizing with anything
            producer.send(event)
            report.sent += 1
            t = topic_of(event)
            report.by_topic[t] = report.by_topic.get(t, 0) + 1
    report.seconds = time.perf_counter() - start
    return report


def _topic_for_line(raw: str, topic: str | None) -> str:
    """The topic a JSONL line belongs to: the one given, or the one its type implies."""
    if topic:
        return topic
    try:
        event_type = json.loads(raw).get("type")
    except (json.JSONDecodeError, AttributeError):
        raise InvalidEvent("?", "not a JSON object", raw.encode()) from None
    if event_type not in TOPIC_OF_TYPE:
        raise InvalidEvent("?", f"unknown event type {event_type!r}", raw.encode())
    return TOPIC_OF_TYPE[event_type]


def validated_lines(path: Path, topic: str | None, report: ProduceReport) -> Iterator[Envelope]:
    """Parse each JSONL line; record rejects with their line number and reason."""
    bounds = EventBounds.from_settings()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:  # the worker's bounds too, so a line it would dead-letter is reported here
                yield parse_bounded(_topic_for_line(line, topic), line.encode(), bounds, time.time())
            except InvalidEvent as err:
                report.rejected.append((n, err.reason))


def produce_file(path: Path, bootstrap: str, topic: str | None = None) -> ProduceReport:
    """`hirestream produce --file`: validate every line, send the good ones."""
    report = ProduceReport()
    return produce_events(validated_lines(path, topic, report), bootstrap, report=report)
