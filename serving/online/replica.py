"""The serving worker's job-index replica, fed straight from Kafka.

Every serving worker holds the whole job side (catalog, index, learned links, job
counters), so it reads ALL partitions of its sources itself: a plain kafka-python
consumer with manual assignment and no consumer group, from the beginning.

Where it starts from. A restarted server must know every open job and every
profile, however old, and raw topics keep a week (`log.retention.hours=168`). So a
serving replica bootstraps from *state* that Kafka keeps for ever, then reads the
events that only teach it something new:

1. state (read first, up to the end offsets seen at start):
   - `<app_id>-job-catalog-changelog`: the worker's `job-catalog` table, compacted
     by faust: each job's latest entry, closed jobs included (a hire into a closed
     job still teaches a link), after the worker's own ordering rules;
   - `members`: compacted (`streams.topics`), so each member's latest profile stays.
2. events (resumed once the state is read, so a hire meets its job and profile):
   - `hires`: kept for ever (hires are rare and every one teaches links);
   - `member-actions`: four weeks (`streams.topics`), which makes a restarted
     replica's job counters a four-week window; the learned links count applies for
     those four weeks of event time whatever the replica's age
     (`EngineConfig.link_apply_window_days`), so replicas agree on them.

The replica reports `ready` only once every partition has reached the end offset it
saw when it started; the scoring agent waits for that before scoring.

Messages pass the worker's checks too (`streams.bounds`, key == payload key), so a
message the worker dead-lettered is skipped here as well: a compacted topic keeps
a wrongly keyed record under the wrong key for ever.

`IndexReplica(engine, bootstrap, topics=...)` without `bootstrap_first` reads raw
event topics only, as `bench/replay.py` does with a log it produced itself.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from serving.online.engine import MatchingEngine
from streams.bounds import EventBounds, judging_clock, parse_bounded
from streams.schemas import HireConfirmed, InvalidEvent, key_of
from streams.state import CatalogEntry
from streams.topics import BY_NAME, JOB_CATALOG_TABLE, Reader, changelog_name, read_by

log = logging.getLogger(__name__)
# From the topic registry (streams.topics): the replica's compacted topics are state,
# read to their end before its other topics, the events.
STATE_TOPICS = tuple(t for t in read_by(Reader.REPLICA) if BY_NAME[t].compacted)
EVENT_TOPICS = tuple(t for t in read_by(Reader.REPLICA) if not BY_NAME[t].compacted)
# Raw events only (the replay benchmark): the job catalog's own source topic in place
# of its changelog, then the replica's topics.
REPLICA_TOPICS = read_by(Reader.JOB_AGENT, Reader.REPLICA)
CATALOG_CHANGELOG_SUFFIX = changelog_name("", JOB_CATALOG_TABLE)


def catalog_changelog(app_id: str) -> str:
    """The changelog topic faust keeps for the worker's `job-catalog` table."""
    return changelog_name(app_id, JOB_CATALOG_TABLE)


class IndexReplica:
    def __init__(self, engine: MatchingEngine, bootstrap: str, topics: tuple[str, ...] = REPLICA_TOPICS,
                 poll_ms: int = 200, *, bootstrap_first: tuple[str, ...] = (),
                 bounds: EventBounds | None = None):
        self.engine = engine
        self.bootstrap = bootstrap
        self.bootstrap_first = tuple(bootstrap_first)
        self.topics = tuple(topics)
        self.poll_ms = poll_ms
        self.bounds = bounds or EventBounds.from_settings()
        self.invalid = 0
        self.read = 0
        self.hires_without_profile = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lag: int | None = None  # messages behind the end offsets, None until assigned
        self.lag_at = 0.0  # time.monotonic() when the end offsets `lag` is measured against were asked for
        self.start_offsets: dict[str, int] = {}  # "topic-partition" -> end offset seen at start
        self.error: BaseException | None = None

    @classmethod
    def for_serving(cls, engine: MatchingEngine, bootstrap: str, app_id: str, **kw) -> "IndexReplica":
        """The serving worker's replica: state first (see the module docstring), then events."""
        return cls(engine, bootstrap, EVENT_TOPICS, bootstrap_first=(catalog_changelog(app_id), *STATE_TOPICS), **kw)

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

    @property
    def ready(self) -> bool:
        """Caught up, at least once, with the end offsets seen at start."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None) -> bool:
        return self._ready.wait(None if timeout is None else max(0.0, timeout))

    # ---- the consumer thread -----------------------------------------------------

    def _assign(self, consumer, topics: tuple[str, ...]):
        from kafka import TopicPartition

        while not self._stop.is_set():
            parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            if {tp.topic for tp in parts} == set(topics):
                consumer.assign(parts)
                consumer.seek_to_beginning(*parts)
                return parts
            consumer.topics()  # refresh metadata: the topics (or the changelog) may not exist yet
            time.sleep(0.5)  # retry interval while topics are being created
        return []

    def _run(self) -> None:
        from streams import kafka_clients

        try:
            consumer = kafka_clients.consumer(self.bootstrap, group_id=None, enable_auto_commit=False,
                                              max_poll_records=2000)
            try:
                parts = self._assign(consumer, self.bootstrap_first + self.topics)
                if not parts:
                    return
                first = [tp for tp in parts if tp.topic in self.bootstrap_first]
                later = [tp for tp in parts if tp.topic not in self.bootstrap_first]
                start_end = consumer.end_offsets(parts)
                self.start_offsets = {f"{tp.topic}-{tp.partition}": end for tp, end in start_end.items()}
                if first:
                    consumer.pause(*later)
                while not self._stop.is_set():
                    for tp, msgs in consumer.poll(timeout_ms=self.poll_ms).items():
                        for m in msgs:
                            self._fold(tp.topic, m)
                    if consumer.paused() and self._caught_up(consumer, first, start_end):
                        consumer.resume(*later)
                    if not self._ready.is_set() and self._caught_up(consumer, parts, start_end):
                        log.info("index replica ready: %d messages read, end offsets at start %s",
                                 self.read, self.start_offsets)
                        self._ready.set()
                    asked = time.monotonic()
                    end = consumer.end_offsets(parts)
                    self._lag = sum(max(0, end[tp] - consumer.position(tp)) for tp in parts)
                    self.lag_at = asked
            finally:
                consumer.close()
        except Exception as err:  # surfaced through `error` and the log; the worker goes on
            self.error = err
            log.exception("index replica stopped")

    @staticmethod
    def _caught_up(consumer, parts, start_end) -> bool:
        return all(consumer.position(tp) >= start_end[tp] for tp in parts)

    def _fold(self, topic: str, m) -> None:
        self.read += 1
        if topic.endswith(CATALOG_CHANGELOG_SUFFIX):
            self._fold_catalog_entry(m.key, m.value)
            return
        try:
            event = parse_bounded(topic, m.value or b"", self.bounds, judging_clock(m.timestamp / 1000.0))
            if m.key is None or m.key.decode(errors="replace") != key_of(event):
                raise InvalidEvent(topic, "message key does not match the payload", m.value or b"")
        except InvalidEvent:
            self.invalid += 1  # the stream agents dead-letter it; the replica just skips it
            return
        if isinstance(event, HireConfirmed) and event.payload.member_id not in self.engine.profiles:
            self.hires_without_profile += 1
        self.engine.apply(event)

    def _fold_catalog_entry(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the worker's job-catalog changelog (faust: JSON key and value)."""
        if key is None or value is None:  # the catalog never deletes; nothing to undo
            return
        try:
            job_id = json.loads(key)
            entry = CatalogEntry.from_dict(json.loads(value))
        except (ValueError, KeyError, TypeError) as err:
            self.invalid += 1
            log.warning("skipped a job-catalog changelog record %r: %r", key[:200], err)
            return
        self.engine.put_catalog_entry(job_id, entry)
