"""Rows -> events -> one validated, event-time-sorted log, and what was rejected or unknown.

A row becomes one event of its source's type, or one rejection (file, line, reason):
a skip rule that matched, a time that does not parse, a payload that does not
validate, or an exact repeat of an earlier row's event. A field the mapping names but
the row leaves empty is left to its schema's unknown ("", Seniority.UNKNOWN, None) and
counted; a required one rejects the row.

Memory is flat in the row count: rows stream through, rejections go straight to a
file (the first `KEEP_REJECTED` stay in the report), and the log is sorted in bounded
chunks and merged (`eventlog.sort_log`), which also finds repeats: the sort key puts
equal events next to each other.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from infra.importing.mapping import FieldRule, Mapping, Source
from infra.importing.readers import BadRow, Row, read_rows
from serving.evaluation.eventlog import TOPIC_RANK, LogRecord, sort_log
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
        def records() -> Iterator[LogRecord]:
            for i, source in enumerate(mapping.sources):
                report.unmapped[source.file] = _unmapped(source)
                for line, event in _events(mapping, source, report, sink):
                    yield LogRecord(i * _LINE_SPAN + line, TOPIC_OF_TYPE[event.type], event)

        def repeat(rec: LogRecord, kept: LogRecord) -> bool:
            if _key(rec)[:3] != _key(kept)[:3]:
                return False
            src, kept_src = mapping.sources[rec.seq // _LINE_SPAN], mapping.sources[kept.seq // _LINE_SPAN]
            report.reject(src.file, rec.seq % _LINE_SPAN,
                          f"duplicate: the same event as {kept_src.file} line {kept.seq % _LINE_SPAN}", sink)
            return True

        report.events = sort_log(records(), out, chunk=chunk, key=_key, duplicate=repeat)
    finally:
        if sink is not None:
            sink.close()
    # the duplicates were found in time order; the report reads in file order
    report.rejected.sort(key=lambda r: ([s.file for s in mapping.sources].index(r[0]), r[1]))
    return report


def _key(rec: LogRecord) -> tuple:
    """Time, topic (entities first), then content without the event id (so repeats sort
    together), then the source position (so the first of repeats is kept)."""
    return (rec.t, TOPIC_RANK.get(rec.topic, 99), _content(rec.event), rec.seq)


def _content(event: schemas.Envelope) -> bytes:
    body = event.model_dump_json(by_alias=True, exclude={"event_id"}).encode()
    return hashlib.blake2b(body, digest_size=12).digest()


def _unmapped(source: Source) -> list[str]:
    payload = CLASS_OF_TYPE[source.event].model_fields["payload"].annotation
    return sorted(set(payload.model_fields) - set(source.fields))


def _events(mapping: Mapping, source: Source, report: ImportReport, sink) -> Iterator[tuple[int, Any]]:
    cls = CLASS_OF_TYPE[source.event]
    nulls = set(mapping.null_values)
    stem = Path(source.file).stem
    for line, row in read_rows(mapping.path_of(source), source.kind, source.delimiter, source.encoding):
        report.rows[source.file] += 1
        if isinstance(row, BadRow):
            report.reject(source.file, line, str(row), sink)
            continue
        row = {k: (None if v is None or v.strip() in nulls else v) for k, v in row.items()}
        try:
            event = _event(mapping, source, cls, row, f"{stem}-{line}", report)
        except _Rejected as err:
            report.reject(source.file, line, str(err), sink)
            continue
        yield line, event


class _Rejected(ValueError):
    pass


def _event(mapping: Mapping, source: Source, cls, row: Row, event_id: str, report: ImportReport):
    for rule in source.skip:
        if rule.column not in row:
            raise _Rejected(f"skip rule on {rule.column!r}: no such column")
        if rule.matches(row[rule.column]):
            raise _Rejected(f"skipped: {rule.reason}")
    cell = row.get(source.time.column)
    if cell is None:
        raise _Rejected(f"event time: {source.time.column!r} is missing")
    try:
        event_time = source.time.parse(cell)
    except (ValueError, OverflowError) as err:
        raise _Rejected(f"event time: cannot read {cell!r} ({source.time.format}): {err}") from None
    payload: dict[str, Any] = {}
    for name, rule in source.fields.items():
        value = _value(mapping, source, rule, row)
        if value is None:
            report.unknown[(source.file, name)] += 1  # the schema's unknown, or a rejection if required
        else:
            payload[name] = value
    try:
        return cls.model_validate({"event_id": event_id, "event_time": event_time, "type": source.event,
                                   "payload": payload})
    except ValidationError as err:
        raise _Rejected(schemas._describe(err)) from None


def _value(mapping: Mapping, source: Source, rule: FieldRule, row: Row) -> Any:
    if rule.value is not None:
        return rule.value
    if rule.seconds_from is not None:
        start, end = row.get(rule.seconds_from), row.get(rule.seconds_to)
        if start is None or end is None:
            return None  # open-ended: unknown
        try:
            return (source.time_rule_for(rule.seconds_to).parse(end)
                    - source.time_rule_for(rule.seconds_from).parse(start)).total_seconds()
        except ValueError as err:
            raise _Rejected(f"{rule.seconds_to}: cannot read {end!r} as a time: {err}") from None
    if rule.join:
        parts = [row[c].strip() for c in rule.join if row.get(c) is not None and row[c].strip()]
        text = rule.sep.join(parts) if parts else None
    else:
        text = next((row[c] for c in [rule.column, *rule.fallback] if row.get(c) is not None), None)
    if text is None:
        return None
    if rule.split is not None:
        return [p.strip() for p in text.split(rule.split) if p.strip()]
    if rule.id:
        return mapping.ids.normalize(text, rule.prefix) or None
    return text.strip()
