"""Rows -> events -> one validated, event-time-sorted log, and what was rejected or unknown.

A row becomes one event of its source's type, or one rejection (file, line, reason):
a skip rule that matched, a time that does not parse, a payload that does not
validate, or an exact repeat of an earlier row's event. A field the mapping names but
the row leaves empty is left to its schema's unknown ("", Seniority.UNKNOWN, None) and
counted; a required one rejects the row.

Memory is flat in the row count: rows stream through, rejections go straight to a
file (the first `KEEP_REJECTED` stay in the report), and the log is sorted in bounded
chunks and merged (`eventlog.sort_entries`), which also finds repeats: the sort key
puts equal events next to each other.

Each event is validated once (as it is made) and serialised once: its sort key (with
the hash that finds repeats) and its log line are taken from those bytes, and the
sort's spill files carry them to the output without parsing them again.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import ValidationError
from pydantic_core import to_json

from infra.importing.mapping import FieldRule, Mapping, Source
from infra.importing.readers import BadRow, Row, read_rows
from serving.evaluation.eventlog import TOPIC_RANK, Entry, line_tail, sort_entries
from streams import schemas
from streams.schemas import CLASS_OF_TYPE, TOPIC_OF_TYPE

KEEP_REJECTED = 1000  # rejections kept in the report object; all of them go to the file
_LINE_SPAN = 10**12  # a record's seq is source index * this + its line: (file, line) come back


@dataclass
class ImportReport:
    rows: Counter = field(default_factory=Counter)  # per file
    events: int = 0  # written to the log
    n_rejected: int = 0
    rejected: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason), first KEEP_REJECTED
    rejected_by_reason: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)  # (file, field) -> rows that left it unknown
    unmapped: dict[str, list[str]] = field(default_factory=dict)  # file -> payload fields no column feeds

    def reject(self, file: str, line: int, reason: str, sink) -> None:
        self.n_rejected += 1
        self.rejected_by_reason[reason.split(":")[0]] += 1
        if len(self.rejected) < KEEP_REJECTED:
            self.rejected.append((file, line, reason))
        if sink is not None:
            sink.write(f"{file}\t{line}\t{reason}\n")


def import_exports(mapping: Mapping, out: str | Path, chunk: int = 200_000,
                   rejected_path: str | Path | None = None) -> ImportReport:
    """Convert every source of `mapping` and write one sorted, deduplicated log to `out`.
    Rejections are written to `rejected_path` (tab-separated file, line, reason) when given."""
    report = ImportReport()
    sink = open(rejected_path, "w", encoding="utf-8") if rejected_path else None
    try:
        def entries() -> Iterator[Entry]:
            for i, source in enumerate(mapping.sources):
                report.unmapped[source.file] = _unmapped(source)
                plan = _Plan.of(mapping, source)
                for line, event in _events(plan, report, sink):
                    yield _entry(event, plan.topic, i * _LINE_SPAN + line)

        def repeat(key: tuple, kept: tuple) -> bool:
            if key[2] != kept[2] or key[:2] != kept[:2]:  # content hash first: it differs most often
                return False
            seq, kept_seq = key[3], kept[3]
            src, kept_src = mapping.sources[seq // _LINE_SPAN], mapping.sources[kept_seq // _LINE_SPAN]
            report.reject(src.file, seq % _LINE_SPAN,
                          f"duplicate: the same event as {kept_src.file} line {kept_seq % _LINE_SPAN}", sink)
            return True

        report.events = sort_entries(entries(), out, chunk=chunk, duplicate=repeat)
    finally:
        if sink is not None:
            sink.close()
    # the duplicates were found in time order; the report reads in file order
    report.rejected.sort(key=lambda r: ([s.file for s in mapping.sources].index(r[0]), r[1]))
    return report


def _entry(event: schemas.Envelope, topic: str, seq: int) -> Entry:
    """The event serialised once, into its sort key and its log line: time, topic
    (entities first), then content without the event id (so repeats sort together),
    then the source position (so the first of repeats is kept)."""
    # model_dump_json's own serialiser, called without its wrapper (which decodes
    # the bytes to str, for serialize() to encode them again): the same bytes
    wire = event.__pydantic_serializer__.to_json(event, by_alias=True)
    t = event.event_time.timestamp()
    return (t, TOPIC_RANK.get(topic, 99), _content(event, wire), seq), line_tail(topic, t, wire)


def _content(event: schemas.Envelope, wire: bytes) -> bytes:
    """The hash of the event's wire bytes without its event id: those bytes are `wire`
    less its second member (`"event_id":...,` after `{"schema":...,`), so they are
    cut out of `wire` rather than serialised again."""
    head = _schema_head(event.schema_)
    field = b'"event_id":' + to_json(event.event_id) + b","
    if wire.startswith(head) and wire.startswith(field, len(head)):
        body = head + wire[len(head) + len(field):]
    else:  # not the layout above (a schema change): serialise without the id after all
        body = event.model_dump_json(by_alias=True, exclude={"event_id"}).encode()
    return hashlib.blake2b(body, digest_size=12).digest()


@lru_cache(maxsize=8)
def _schema_head(schema: str) -> bytes:
    return b'{"schema":' + to_json(schema) + b","


def _unmapped(source: Source) -> list[str]:
    payload = CLASS_OF_TYPE[source.event].model_fields["payload"].annotation
    return sorted(set(payload.model_fields) - set(source.fields))


@dataclass(frozen=True)
class _Plan:
    """One source's rules, worked out once rather than for every row: the event's
    validator and topic, the columns read, null cells, time parser, and for each
    payload field a function row -> value."""
    mapping: Mapping
    source: Source
    topic: str
    columns: tuple[str, ...]  # every column a rule reads: the others are not looked at
    nulls: frozenset[str]
    stem: str
    parse_time: Callable[[str], datetime]
    fields: tuple[tuple[str, Callable[[Row], Any]], ...]
    validate: Callable[[dict], Any]  # cls.model_validate's validator, without its Python wrapper

    @classmethod
    def of(cls, mapping: Mapping, source: Source) -> "_Plan":
        # a row's event time is often parsed twice (a view's start is also where its
        # dwell starts); a small cache, bounded, makes that once
        parse_time = lru_cache(maxsize=1024)(source.time.parser())
        return cls(mapping, source, TOPIC_OF_TYPE[source.event],
                   _columns(source), frozenset(mapping.null_values), Path(source.file).stem, parse_time,
                   tuple((name, _field_getter(mapping, rule, parse_time)) for name, rule in source.fields.items()),
                   CLASS_OF_TYPE[source.event].__pydantic_validator__.validate_python)


def _columns(source: Source) -> tuple[str, ...]:
    named = [source.time.column, *(rule.column for rule in source.skip)]
    for rule in source.fields.values():
        named += [rule.column, *rule.fallback, *rule.join, rule.seconds_from, rule.seconds_to]
    return tuple(dict.fromkeys(c for c in named if c is not None))


def _events(plan: _Plan, report: ImportReport, sink) -> Iterator[tuple[int, Any]]:
    source, nulls, columns = plan.source, plan.nulls, plan.columns
    rows = 0  # counted here, added to the report once (also when reading stops early)
    try:
        for line, row in read_rows(plan.mapping.path_of(source), source.kind, source.delimiter, source.encoding):
            rows += 1
            if isinstance(row, BadRow):
                report.reject(source.file, line, str(row), sink)
                continue
            # the cells the rules read, a null spelling made None; a column the row
            # lacks stays absent (a skip rule on it is an error, not a match)
            row = {c: (None if (v := row[c]) is None or v.strip() in nulls else v) for c in columns if c in row}
            try:
                event = _event(plan, row, f"{plan.stem}-{line}", report)
            except _Rejected as err:
                report.reject(source.file, line, str(err), sink)
                continue
            yield line, event
    finally:
        if rows:  # a file with no rows is not listed, as before
            report.rows[source.file] += rows


class _Rejected(ValueError):
    pass


def _event(plan: _Plan, row: Row, event_id: str, report: ImportReport):
    source = plan.source
    for rule in source.skip:
        if rule.column not in row:
            raise _Rejected(f"skip rule on {rule.column!r}: no such column")
        if rule.matches(row[rule.column]):
            raise _Rejected(f"skipped: {rule.reason}")
    cell = row.get(source.time.column)
    if cell is None:
        raise _Rejected(f"event time: {source.time.column!r} is missing")
    try:
        event_time = plan.parse_time(cell)
    except (ValueError, OverflowError) as err:
        raise _Rejected(f"event time: cannot read {cell!r} ({source.time.format}): {err}") from None
    payload: dict[str, Any] = {}
    for name, value_of in plan.fields:
        value = value_of(row)
        if value is None:
            report.unknown[(source.file, name)] += 1  # the schema's unknown, or a rejection if required
        else:
            payload[name] = value
    try:
        return plan.validate({"event_id": event_id, "event_time": event_time, "type": source.event,
                              "payload": payload})
    except ValidationError as err:
        raise _Rejected(schemas._describe(err)) from None


def _field_getter(mapping: Mapping, rule: FieldRule, parse_time: Callable[[str], datetime]) -> Callable[[Row], Any]:
    """row -> the field's value (None: unknown), for one rule: a constant, the seconds
    between two time columns (parsed as the event time is), or a cell's text."""
    if rule.value is not None:
        value = rule.value
        return lambda row: value
    if rule.seconds_from is not None:
        return _seconds_getter(rule.seconds_from, rule.seconds_to, parse_time)
    text_of = _join_getter(rule.join, rule.sep) if rule.join else _first_getter([rule.column, *rule.fallback])
    if rule.split is not None:
        sep = rule.split
        return lambda row: None if (text := text_of(row)) is None else \
            [p.strip() for p in text.split(sep) if p.strip()]
    if rule.id:
        normalize, prefix = mapping.ids.normalize, rule.prefix

        # ids repeat from row to row (a member's every view): a bounded cache
        @lru_cache(maxsize=1 << 14)
        def normalized(text: str) -> str | None:
            return normalize(text, prefix) or None
        return lambda row: None if (text := text_of(row)) is None else normalized(text)
    return lambda row: None if (text := text_of(row)) is None else text.strip()


def _seconds_getter(start_col: str, end_col: str, parse_time: Callable[[str], datetime]) -> Callable[[Row], Any]:
    def seconds(row: Row) -> float | None:
        start, end = row.get(start_col), row.get(end_col)
        if start is None or end is None:
            return None  # open-ended: unknown
        try:
            return (parse_time(end) - parse_time(start)).total_seconds()
        except ValueError as err:
            raise _Rejected(f"{end_col}: cannot read {end!r} as a time: {err}") from None
    return seconds


def _join_getter(columns: list[str], sep: str) -> Callable[[Row], str | None]:
    def joined(row: Row) -> str | None:
        parts = [row[c].strip() for c in columns if row.get(c) is not None and row[c].strip()]
        return sep.join(parts) if parts else None
    return joined


def _first_getter(columns: list[str]) -> Callable[[Row], str | None]:
    if len(columns) == 1:
        column = columns[0]
        return lambda row: row.get(column)
    return lambda row: next((row[c] for c in columns if row.get(c) is not None), None)
