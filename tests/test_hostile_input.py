"""Hostile input over every topic a serving worker reads, against a real worker.

For each of `members`, `companies`, `jobs`, `member-actions`, `hires` and
`score-requests`, and for several rounds, the test sends a valid event, then one
hostile message, then a valid event, and so on. It then requires that:

- every hostile message is dead-lettered with its reason (read back from
  `<topic>.dlq`), or applied where it is valid (a value just under the size bound,
  a 128-character id), or recognised as a duplicate (same event id, new content:
  the first content stays);
- every valid event around them is applied (visible over the read API, or answered
  on `score-results`);
- the worker stays up, and its resident memory after the last round is within
  `RSS_SLACK` of what it was after the first (a warm-up round).

Not here: null keys, keys on the wrong partition and compressed oversize values
(the agent wrapper's checks, tested with that work), and `score-results`, which no
worker reads.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from streams.schemas import (
    ID_MAX, Envelope, ScoreRequest, ScoreRequested, key_of, parse, serialize, topic_of,
)
from streams.settings import get_settings
from tests import factories as f
from tests.hostile import read_dead_letters, rss_bytes
from tests.kafka_helpers import free_port, java_partition, unique_name

pytestmark = pytest.mark.kafka

ROUNDS = 3
RSS_SLACK = 24 * 1024 * 1024  # bytes of RSS growth from round 1 to the last allowed
MAX_BYTES = get_settings().max_event_bytes  # the worker runs with the default
PARTITIONS = get_settings().member_partitions  # every topic of the map has this many


def now() -> datetime:
    return datetime.now(timezone.utc)


# ---- valid events per topic, and how to see one was applied -------------------------

@dataclass(frozen=True)
class TopicCase:
    name: str
    make: Callable[[str], Envelope]  # a valid event whose ids contain the marker
    applied: Callable[[WorkerProcess, Envelope], bool]
    # A second event with the same event id and other content (None: no such thing).
    redo: Callable[[Envelope], Envelope] | None = None


def _member(w, e):
    return w.member(e.payload.member_id) or {}


TOPICS = [
    TopicCase(
        "members",
        lambda m: f.member_upserted(m, member_id=f"m-{m}", title="Glazier"),
        lambda w, e: (_member(w, e).get("profile") or {}).get("title") == e.payload.title,
        lambda e: e.model_copy(update={"payload": e.payload.model_copy(update={"title": "Changed"})}),
    ),
    TopicCase(
        "companies",
        lambda m: f.company(m, company_id=f"c-{m}"),
        lambda w, e: (w.company(e.payload.company_id) or {}).get("company", {}).get("name") == e.payload.name,
        lambda e: e.model_copy(update={"payload": e.payload.model_copy(update={"name": "Changed"})}),
    ),
    TopicCase(
        "jobs",
        lambda m: f.job_posted(m, job_id=f"j-{m}", title="Glassblower"),
        lambda w, e: ((w.job(e.payload.job_id) or {}).get("job") or {}).get("title") == e.payload.title,
        lambda e: e.model_copy(update={"payload": e.payload.model_copy(update={"title": "Changed"})}),
    ),
    TopicCase(
        "member-actions",
        lambda m: f.action(m, "view", member_id=f"m-{m}", job_id=f"j-{m}"),
        lambda w, e: _member(w, e).get("counts") == {"view": 1},
        lambda e: e.model_copy(update={"payload": e.payload.model_copy(update={"job_id": "j-changed"})}),
    ),
    TopicCase(
        "hires",
        lambda m: f.hire(m, member_id=f"m-{m}", job_id=f"j-{m}"),
        lambda w, e: [h["job"]["job_id"] for h in _member(w, e).get("history", [])] == [e.payload.job_id],
        lambda e: e.model_copy(update={"payload": e.payload.model_copy(update={"job_id": "j-changed"})}),
    ),
    TopicCase(
        "score-requests",
        lambda m: ScoreRequested(event_id=m, event_time=now(),
                                 payload=ScoreRequest(request_id=f"r-{m}", member_id=f"m-{m}", k=3,
                                                      deadline_ms=60_000)),
        None,  # answered on score-results: see ScoreResults
    ),
]


# ---- hostile messages: (name, bytes, what the dead letter's reason must say) ---------

def _with(raw: bytes, **fields) -> bytes:
    return json.dumps({**json.loads(raw), **fields}).encode()


def _padded(raw: bytes, size: int) -> bytes:
    """The same JSON, `size` bytes long (trailing whitespace is valid JSON)."""
    return raw + b" " * (size - len(raw))


def hostile_messages(case: TopicCase, marker: Callable[[str], str]) -> list[tuple[str, str, bytes, str]]:
    """(what it is, its marker, its bytes, what its dead letter's reason must say)."""
    def base(name: str) -> tuple[str, bytes]:
        m = marker(name)
        return m, serialize(case.make(m))

    out = []
    m, _ = base("notjson")
    out.append(("not JSON", m, b"not json " + m.encode(), "Invalid JSON"))
    m, raw = base("truncated")
    out.append(("truncated", m, raw[: raw.index(m.encode()) + len(m) + 8], "Invalid JSON"))
    m, _ = base("nested")
    out.append(("deeply nested", m, b'{"m": "' + m.encode() + b'", "x": ' + b"[" * 20000 + b"]" * 20000 + b"}",
                "recursion limit"))
    m, raw = base("utf8")
    out.append(("invalid UTF-8", m, raw.replace(m.encode(), m.encode() + b"\xff\xfe"), "invalid unicode"))
    m, raw = base("nul")
    out.append(("raw NUL byte", m, raw.replace(m.encode(), m.encode() + b"\x00"), "control character"))
    m, raw = base("escnul")
    out.append(("escaped NUL in an id", m, raw.replace(m.encode(), m.encode() + b"\\u0000"), "pattern"))
    m, raw = base("wrongtype")
    out.append(("wrong types", m, _with(raw, payload=[m]), "payload"))
    m, raw = base("type")
    out.append(("unknown event type", m, _with(raw, type="thing.teleported"), "type"))
    m, raw = base("schema")
    out.append(("unknown schema version", m, _with(raw, schema="hirestream.v3"), "schema"))  # a later major version
    m, raw = base("big")
    out.append(("over the size bound", m, _padded(raw, MAX_BYTES + 1000), "exceeds max_event_bytes"))
    m, raw = base("future")
    out.append(("year 9999", m, _with(raw, event_time="9999-01-01T00:00:00Z"), "ahead of the clock"))
    m, raw = base("past")
    out.append(("before 2000", m, _with(raw, event_time="1999-12-31T23:00:00Z"), "before event_time_min"))
    m, raw = base("longid")
    out.append(("129-character event id", m, _with(raw, event_id=m.ljust(ID_MAX + 1, "x")), "at most 128"))
    return out


def applied_edges(case: TopicCase, marker: Callable[[str], str]) -> list[tuple[str, bytes, Envelope]]:
    """Valid messages at the bounds: they must be applied."""
    near = case.make(marker("near"))
    longest = case.make(marker("maxid"))
    longest = longest.model_copy(update={"event_id": longest.event_id.ljust(ID_MAX, "x")})
    newer = case.make(marker("newer"))
    return [("just under the size bound", _padded(serialize(near), MAX_BYTES), near),
            ("a 128-character event id", serialize(longest), longest),
            # the compatibility policy: a newer producer's field is kept, not dead-lettered
            ("a field this worker does not know", _with(serialize(newer), added_by_v3={"x": 1}), newer)]


def on_partition_of(case: TopicCase, key: str, marker: Callable[[str], str], name: str) -> Envelope:
    """A valid event with a key of its own on `key`'s partition: once it is applied,
    everything sent before it on that partition has been handled (in order)."""
    want = java_partition(key.encode(), PARTITIONS)
    for i in range(1000):
        event = case.make(marker(f"{name}{i}"))
        if java_partition(key_of(event).encode(), PARTITIONS) == want:
            return event
    raise AssertionError(f"no key on partition {want} in 1000 tries")


# ---- reading results back ------------------------------------------------------------

class ScoreResults:
    """Every score result seen so far, by request id."""

    def __init__(self, bootstrap: str):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        parts = [TopicPartition("score-results", p) for p in self.consumer.partitions_for_topic("score-results")]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.by_request: dict[str, object] = {}

    def has(self, request_id: str) -> bool:
        for records in self.consumer.poll(timeout_ms=200).values():
            for r in records:
                result = parse("score-results", r.value).payload
                self.by_request[result.request_id] = result
        return request_id in self.by_request

    def close(self):
        self.consumer.close()


@pytest.fixture(scope="module")
def kafka_bootstrap(tmp_path_factory):
    """A broker of this module's own: the hundreds of 128 KiB messages it leaves behind
    would otherwise be re-read by every later test's fresh worker."""
    from infra.broker import isolated_broker

    with isolated_broker(tmp_path_factory.mktemp("hostile-kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory):
    w = WorkerProcess(kafka_bootstrap, tmp_path_factory.mktemp("hostile"), free_port(), command="serve",
                      app_id=unique_name("hs-hostile"), serving_scorer="bm25",
                      broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5).start()
    w.wait_ready(timeout=90)
    yield w
    w.stop()


def test_hostile_input_is_dead_lettered_with_reasons_and_the_rest_applied(worker, kafka_bootstrap):
    results = ScoreResults(kafka_bootstrap)
    rss = []
    try:
        for round_no in range(ROUNDS):
            run_one_round(worker, kafka_bootstrap, results, round_no)
            assert worker.alive and worker._get("/health/") == {"status": "ok"}
            rss.append(rss_bytes(worker.proc.pid))
    finally:
        results.close()
    print(f"worker RSS after each round (MiB): {[round(r / 2**20, 1) for r in rss]}")
    assert rss[-1] - rss[0] < RSS_SLACK, f"RSS grew {(rss[-1] - rss[0]) / 2**20:.1f} MiB over {ROUNDS - 1} rounds"


def run_one_round(worker: WorkerProcess, bootstrap: str, results: ScoreResults, round_no: int) -> None:
    tag = uuid.uuid4().hex[:8]
    valid: list[Envelope] = []
    expected_letters: dict[str, dict[str, str]] = {}  # topic -> marker -> reason part
    duplicates: list[tuple[TopicCase, Envelope]] = []
    with EventProducer(bootstrap, max_request_size=4 * 1024 * 1024) as p:
        for case in TOPICS:
            # Markers name their case last, after a dot, so none is a substring of another.
            marker = lambda name, c=case: f"{tag}.{round_no}.{c.name}.{name}"  # noqa: E731
            letters = expected_letters.setdefault(case.name, {})

            def send_valid(event: Envelope, raw: bytes | None = None) -> None:
                p.send_raw(case.name, raw if raw is not None else serialize(event), key=key_of(event).encode())
                valid.append(event)

            send_valid(case.make(marker("first")))
            for name, m, raw, reason in hostile_messages(case, marker):
                # Keyed as a valid event with its marker would be, so that the one
                # thing wrong with it is the thing under test.
                p.send_raw(case.name, raw, key=key_of(case.make(m)).encode())
                letters[m] = reason
                send_valid(case.make(marker(f"after-{len(letters)}")))
            for name, raw, event in applied_edges(case, marker):
                send_valid(event, raw)
            if case.redo is not None:
                first = case.make(marker("dup"))
                send_valid(first)
                p.send_raw(case.name, serialize(case.redo(first)), key=key_of(first).encode())
                send_valid(on_partition_of(case, key_of(first), marker, "afterdup"))
                duplicates.append((case, first))

    for event in valid:  # every valid event is applied, whatever came between
        case = next(c for c in TOPICS if c.name == topic_of(event))
        if case.applied is None:
            worker.wait_for(lambda: results.has(event.payload.request_id), 90,
                            f"the score result for {event.payload.request_id}")
            assert results.by_request[event.payload.request_id].status.value == "ok"
        else:
            worker.wait_for(lambda: case.applied(worker, event), 90, f"{case.name} event {event.event_id[:60]}")
    for case, first in duplicates:  # the first content stays
        assert case.applied(worker, first), f"{case.name}: a duplicate id with new content changed state"
    for topic, wanted in expected_letters.items():
        letters = read_dead_letters(bootstrap, topic, set(wanted))
        for marker, reason in wanted.items():
            assert reason in letters[marker]["error"], (topic, marker, letters[marker])
            assert letters[marker]["source_topic"] == topic
