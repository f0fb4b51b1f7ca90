"""The recorded event log: a compact, ordered JSONL file of events, and its round trips.

One line per event, in event-time order:

    {"seq": 17, "topic": "jobs", "partition": 2, "offset": 40, "t": 1767571200.0, "event": {<envelope>}}

`partition`/`offset` are the Kafka coordinates when the log was recorded from topics
(null when it came from the simulator); `seq` is the line's place in the log and `t`
the event time in epoch seconds. Plain envelope-per-line files (the simulator's
`write_jsonl`, `hirestream produce --file`) read too.

    write_log(events, path)                          # simulator output or LogRecords
    record_topics(bootstrap, path)                   # every partition of the topics, to their end
    for rec in read_log(path, report): ...           # malformed lines are counted, not fatal
    check_log(path)                                  # valid lines? in event-time order? (no Kafka)
    sort_log(read_log(path), out, chunk=200_000)     # event-time order in bounded memory
    sort_entries(((key, tail), ...), out)            # the same, for records already serialised
    produce_log(path, bootstrap, speed=100.0)        # back onto Kafka at 100x event time
"""
from __future__ import annotations

import heapq
import json
import math
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pydantic import ValidationError

from streams import schemas
from streams.schemas import CLASS_OF_TYPE, Envelope, TOPIC_OF_TYPE, key_of, serialize, topic_of
from streams.topics import ALL_TOPICS, Reader, read_by

# Among events with the same event time, entities come before what refers to them:
# the registry lists topics in that order.
TOPIC_RANK = {spec.name: i for i, spec in enumerate(ALL_TOPICS)}
RECORDED_TOPICS = read_by(Reader.RECORDER)


@dataclass(frozen=True)
class LogRecord:
    seq: int
    topic: str
    event: Envelope
    partition: int | None = None
    offset: int | None = None

    @property
    def t(self) -> float:
        return self.event.event_time.timestamp()


@dataclass
class ReadReport:
    lines: int = 0
    events: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def line_tail(topic: str, t: float, event_json: bytes, partition: int | None = None,
              offset: int | None = None) -> bytes:
    """A log line without its leading `{"seq":N`: what a sort carries, since the line's
    place (its seq) is only known when the sorted log is written."""
    if type(t) is float and math.isfinite(t) and _plain(partition) and _plain(offset):
        # what json.dumps writes for these (a float's repr, an int's digits, null), a
        # few times faster: this runs for every event an import or a sort writes
        return b',"topic":%s,"partition":%s,"offset":%s,"t":%s,"event":%s}\n' % (
            _json_str(topic), _json_num(partition), _json_num(offset), repr(t).encode(), event_json)
    head = json.dumps({"topic": topic, "partition": partition, "offset": offset, "t": t}, separators=(",", ":"))
    # the envelope's own wire bytes, spliced in: no second encoding
    return b"," + head[1:-1].encode() + b',"event":' + event_json + b"}\n"


def _plain(n: Any) -> bool:
    return n is None or type(n) is int


def _json_num(n: int | None) -> bytes:
    return b"null" if n is None else b"%d" % n


@lru_cache(maxsize=256)
def _json_str(text: str) -> bytes:
    return json.dumps(text).encode()  # a handful of topic names


def _seq_head(seq: int) -> bytes:
    return b'{"seq":%d' % seq


def _line(rec: LogRecord) -> bytes:
    return _seq_head(rec.seq) + line_tail(rec.topic, rec.t, serialize(rec.event), rec.partition, rec.offset)


def as_records(items: Iterable[Envelope | LogRecord]) -> Iterator[LogRecord]:
    for seq, item in enumerate(items):
        if isinstance(item, LogRecord):
            yield item
        else:
            yield LogRecord(seq, topic_of(item), item)


def write_log(items: Iterable[Envelope | LogRecord], path: str | Path) -> int:
    """Write events (or records) as a log, in the order given; return how many."""
    n = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb", buffering=1 << 20) as f:
        for rec in as_records(items):
            f.write(_line(rec))
            n += 1
    return n


def parse_line(line: bytes | str, seq: int) -> LogRecord:
    """One log line (a log record or a bare envelope) -> LogRecord; ValueError says why not."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object but {type(obj).__name__}")
    envelope = obj.get("event") if "event" in obj else obj
    if not isinstance(envelope, dict):
        raise ValueError("'event' is not a JSON object")
    kind = envelope.get("type")
    cls = CLASS_OF_TYPE.get(kind)  # a parsed object validates straight into it, no re-serializing
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    try:
        event = cls.model_validate(envelope)
    except ValidationError as err:
        raise ValueError(schemas._describe(err)) from None
    topic = obj.get("topic") or TOPIC_OF_TYPE[kind]
    if TOPIC_OF_TYPE[kind] != topic:
        raise ValueError(f"a {kind} event does not belong on topic {topic!r}")
    return LogRecord(int(obj.get("seq", seq)) if "event" in obj else seq, topic, event,
                     obj.get("partition"), obj.get("offset"))


def read_log(path: str | Path, report: ReadReport | None = None) -> Iterator[LogRecord]:
    """Every well-formed line of a log, in file order; malformed ones are counted in
    `report.skipped` with their line number and reason, and reading goes on."""
    report = report if report is not None else ReadReport()
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            report.lines += 1
            try:
                rec = parse_line(line, seq=n - 1)
            except ValueError as err:
                report.skipped.append((n, str(err)))
                continue
            report.events += 1
            yield rec


def sort_key(rec: LogRecord) -> tuple:
    return (rec.t, TOPIC_RANK.get(rec.topic, 99), rec.partition or 0, rec.offset or 0, rec.seq)


class LogOrderError(ValueError):
    """A log that is not in event-time order where order is needed (replay)."""

    def __init__(self, seq: int, event_id: str, t: float, last_t: float):
        super().__init__(f"the log is not in event-time order at seq {seq} ({event_id}): {t} < {last_t}; "
                         f"`hirestream sort LOG` puts it in order (`hirestream validate LOG` checks)")


@dataclass
class LogCheck:
    report: ReadReport
    first_unsorted: int | None = None  # line number of the first event earlier than the one before it


def check_log(path: str | Path) -> LogCheck:
    """Read a whole log: the rejected lines with reasons, and whether it is sorted."""
    check = LogCheck(ReadReport())
    last: tuple | None = None
    for rec in read_log(path, check.report):
        key = sort_key(rec)[:2]  # time, then topic rank: what replay and training need
        if last is not None and key < last and check.first_unsorted is None:
            check.first_unsorted = check.report.lines  # every non-blank line so far was read
        last = key
    return check


# One record on its way through a sort: (its sort key, its line after `{"seq":N`).
# Each record is serialised once, when it enters; the merge compares keys and copies
# lines, and nothing is parsed or validated again on the way out.
Entry = tuple[tuple, bytes]
_RUN_BLOCK_BYTES = 1 << 16  # lines per pickled block of a run file: a merge holds one block per run


def sort_log(records: Iterable[LogRecord], out: str | Path, chunk: int = 200_000,
             key: Callable[[LogRecord], tuple] = sort_key,
             duplicate: Callable[[tuple, tuple], bool] | None = None) -> int:
    """Write `records` to `out` in `key` order, renumbered; return how many.

    At most `chunk` records are held at once (see `sort_entries`). `out` may be the
    file `records` are read from: it is replaced only when the merge is done.
    `duplicate(key, kept_key)`: drop a record when it repeats the one kept just before
    it (see `sort_entries`)."""
    entries = ((key(r), line_tail(r.topic, r.t, serialize(r.event), r.partition, r.offset)) for r in records)
    return sort_entries(entries, out, chunk=chunk, duplicate=duplicate)


def sort_entries(entries: Iterable[Entry], out: str | Path, chunk: int = 200_000,
                 duplicate: Callable[[tuple, tuple], bool] | None = None) -> int:
    """Write the lines of `entries` to `out` in key order, numbered from 0; return how many.

    At most `chunk` entries are held at once: each chunk is sorted and spilled to a
    temporary run file beside `out`, then the runs are merged (an external merge sort),
    so a log larger than memory sorts too. The run files are this function's own and
    hold what it was given, already serialised (and, from `read_log` or an import,
    already validated): they are read back without parsing. `duplicate(key, kept_key)`:
    drop an entry when it repeats the entry kept just before it (a key that sorts
    repeats together makes this whole-log deduplication in constant memory)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_key = itemgetter(0)  # ties keep their input order (stable sort, stable merge): never the lines decide
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".sort-") as tmp:
        runs: list[Path] = []
        buf: list[Entry] = []

        def spill() -> None:
            buf.sort(key=by_key)
            runs.append(Path(tmp) / f"run-{len(runs)}.pickle")
            _write_run(buf, runs[-1])
            buf.clear()

        for entry in entries:
            buf.append(entry)
            if len(buf) >= chunk:
                spill()
        merged: Iterable[Entry]
        if not runs:  # it all fit in one chunk: no run files, nothing to merge
            buf.sort(key=by_key)
            merged = buf
        else:
            if buf:
                spill()
            merged = heapq.merge(*(_read_run(r) for r in runs), key=by_key)
        if duplicate is not None:
            merged = _without_repeats(merged, duplicate)
        staged = Path(tmp) / "sorted.jsonl"
        n = 0
        with open(staged, "wb", buffering=1 << 20) as f:
            for n, (_, tail) in enumerate(merged, start=1):
                f.write(_seq_head(n - 1) + tail)
        os.replace(staged, out)
    return n


def _write_run(entries: list[Entry], path: Path) -> None:
    # pickled blocks of ~64 KiB of lines: not one pickle per entry (the per-call cost)
    # nor one per run (a merge holds one block of every run: memory stays near what
    # reading each run line by line took)
    with open(path, "wb", buffering=1 << 20) as f:
        block: list[Entry] = []
        size = 0
        for entry in entries:
            block.append(entry)
            size += len(entry[1])
            if size >= _RUN_BLOCK_BYTES:
                pickle.dump(block, f, protocol=pickle.HIGHEST_PROTOCOL)
                block, size = [], 0
        if block:
            pickle.dump(block, f, protocol=pickle.HIGHEST_PROTOCOL)


def _read_run(path: Path) -> Iterator[Entry]:
    with open(path, "rb") as f:
        while True:
            try:
                block = pickle.load(f)
            except EOFError:
                return
            yield from block


def _without_repeats(entries: Iterable[Entry], duplicate) -> Iterator[Entry]:
    kept: tuple | None = None
    for entry in entries:
        if kept is not None and duplicate(entry[0], kept):
            continue
        kept = entry[0]
        yield entry


# ---- Kafka round trips -------------------------------------------------------------


def record_topics(bootstrap: str, path: str | Path, topics: Iterable[str] = RECORDED_TOPICS,
                  timeout: float = 60.0, progress: bool = True) -> ReadReport:
    """Read every partition of `topics` from the beginning to the end offsets they had
    when recording began, and write them as one log in event-time order.

    Messages that are not valid events are counted, not recorded (their dead letters
    are on `<topic>.dlq`)."""
    from kafka import TopicPartition

    from streams import kafka_clients
    from streams.schemas import InvalidEvent, parse

    report = ReadReport()
    consumer = kafka_clients.consumer(bootstrap, enable_auto_commit=False, group_id=None,
                                      consumer_timeout_ms=int(timeout * 1000), max_poll_records=5000)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not parts:
            raise ValueError(f"none of the topics {list(topics)} exist on {bootstrap}")
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        todo = {tp for tp in parts if end[tp] > consumer.position(tp)}
        records: list[LogRecord] = []
        deadline = time.monotonic() + timeout
        bar = _progress(sum(end[tp] for tp in parts), "record", progress)
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"recording did not reach the end offsets within {timeout} s: {sorted(map(str, todo))}")
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                for m in msgs:
                    if m.offset >= end[tp]:
                        continue
                    report.lines += 1
                    try:
                        event = parse(tp.topic, m.value or b"")
                    except InvalidEvent as err:
                        report.skipped.append((m.offset, f"{tp.topic}[{tp.partition}]: {err.reason}"))
                        continue
                    records.append(LogRecord(len(records), tp.topic, event, tp.partition, m.offset))
                    report.events += 1
                bar.update(len(msgs))
                if consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
        bar.close()
    finally:
        consumer.close()
    records.sort(key=sort_key)
    write_log((LogRecord(i, r.topic, r.event, r.partition, r.offset) for i, r in enumerate(records)), path)
    return report


@dataclass
class ProduceStats:
    sent: int = 0
    seconds: float = 0.0
    skipped: int = 0

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def produce_log(records: Iterable[LogRecord], bootstrap: str, speed: float | None = None,
                progress: bool = True, total: int | None = None, **producer_overrides: Any) -> ProduceStats:
    """Send a log's events to their topics, keyed as the map says.

    speed: event time runs `speed` times faster than wall time (100.0 = a day in
    ~14 minutes); None sends as fast as the producer can."""
    from streams.producer import make_producer

    stats = ProduceStats()
    producer = make_producer(bootstrap, **producer_overrides)
    bar = _progress(total, "produce", progress)
    t0 = time.perf_counter()
    first: float | None = None
    try:
        for rec in records:
            if speed:
                first = rec.t if first is None else first
                wait = (rec.t - first) / speed - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)  # pacing to event time, not a synchronization
            producer.send(rec.topic, key=key_of(rec.event).encode(), value=serialize(rec.event))
            stats.sent += 1
            bar.update(1)
        producer.flush()
    finally:
        producer.close()
        bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def parse_speed(text: str) -> float | None:
    """'100x' / '100' -> 100.0; 'max' / 'inf' / '0' -> None (no pacing)."""
    t = text.strip().lower()
    if t in ("max", "inf", "0", "0x", ""):
        return None
    t = t.removesuffix("x")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"speed {text!r} is not a number like '100x' or 'max'") from None
    if v <= 0:
        raise ValueError(f"speed must be positive, got {text!r}")
    return v


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (piped logs get no carriage returns)
    return tqdm(total=total, desc=desc, unit="ev", disable=None if enabled else True, mininterval=1.0)
