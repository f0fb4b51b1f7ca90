"""The serving worker's job-index replica, fed straight from Kafka.

Every serving worker holds the whole job side (catalog, index, learned links, job
counters), so it reads ALL partitions of `jobs`, `hires`, `members` (profiles: a hire
teaches links from the hired member's attributes) and `member-actions` (job
counters) itself: a plain kafka-python consumer with manual assignment and no
consumer group, from the beginning. After a restart it rebuilds by reading the topics
again; nothing to restore, nothing to rebalance.

Events are folded into a `MatchingEngine` with `apply`, the same call replay makes.
Across topics there is no order, so a hire read before its member's profile teaches
no link (it is counted in `hires_without_profile`); member state proper comes from the
worker's changelog-backed `member-state` table, not from here.
"""
from __future__ import annotations

import logging
import threading
import time

from serving.engine import MatchingEngine
from streams.schemas import HireConfirmed, InvalidEvent, parse

log = logging.getLogger(__name__)
REPLICA_TOPICS = ("jobs", "hires", "members", "member-actions")


class IndexReplica:
    def __init__(self, engine: MatchingEngine, bootstrap: str, topics: tuple[str, ...] = REPLICA_TOPICS,
                 poll_ms: int = 200):
        self.engine = engine
        self.bootstrap = bootstrap
        self.topics = topics
        self.poll_ms = poll_ms
        self.invalid = 0
        self.read = 0
        self.hires_without_profile = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lag: int | None = None  # messages behind the end offsets, None until assigned
        self.error: BaseException | None = None

    def start(self) -> "IndexReplica":
        self._thread = threading.Thread(target=self._run, name="index-replica", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def lag(self) -> int | None:
        return self._lag

    def _assign(self, consumer):
        from kafka import TopicPartition

        while not self._stop.is_set():
            parts = [TopicPartition(t, p) for t in self.topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            if {tp.topic for tp in parts} == set(self.topics):
                consumer.assign(parts)
                consumer.seek_to_beginning(*parts)
                return parts
            consumer.topics()  # refresh metadata: the topics may not exist yet
            time.sleep(0.5)  # retry interval while topics are being created
        return []

    def _run(self) -> None:
        from kafka import KafkaConsumer

        try:
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                     max_poll_records=2000)
            try:
                parts = self._assign(consumer)
                while not self._stop.is_set():
                    for tp, msgs in consumer.poll(timeout_ms=self.poll_ms).items():
                        for m in msgs:
                            self._fold(tp.topic, m.value or b"")
                    end = consumer.end_offsets(parts)
                    self._lag = sum(max(0, end[tp] - consumer.position(tp)) for tp in parts)
            finally:
                consumer.close()
        except Exception as err:  # surfaced through `error` and the log; the worker goes on
            self.error = err
            log.exception("index replica stopped")

    def _fold(self, topic: str, raw: bytes) -> None:
        self.read += 1
        try:
            event = parse(topic, raw)
        except InvalidEvent:
            self.invalid += 1  # the stream agents dead-letter it; the replica just skips it
            return
        if isinstance(event, HireConfirmed) and event.payload.member_id not in self.engine.profiles:
            self.hires_without_profile += 1
        self.engine.apply(event)
