"""Rows out of export files, one at a time, each with the line it starts on."""
from __future__ import annotations

import csv
import json
from datetime import date, time
from pathlib import Path
from typing import Iterator

Row = dict[str, str | None]


class BadRow(ValueError):
    """A row that cannot be read at all (a JSON line that is not JSON)."""


class UnreadableExport(ValueError):
    """A whole file that cannot be read (missing, or not the format its mapping says)."""


def read_rows(path: Path, kind: str, delimiter: str = ",", encoding: str = "utf-8") -> Iterator[tuple[int, Row | BadRow]]:
    """(line, row) in file order; a row that is not a row comes as a BadRow, so the
    caller reports it and reads on. Memory holds one row."""
    if not path.is_file():
        raise UnreadableExport(f"{path}: no such file")
    if kind == "csv":
        yield from _csv_rows(path, delimiter, encoding)
    elif kind == "jsonl":
        yield from _jsonl_rows(path, encoding)
    elif kind == "parquet":
        yield from _parquet_rows(path)
    else:
        raise ValueError(f"unknown file kind {kind!r}")


def _csv_rows(path: Path, delimiter: str, encoding: str) -> Iterator[tuple[int, Row | BadRow]]:
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        start = reader.line_num + 1  # a quoted cell may span lines: report where the row starts
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                yield line, BadRow(f"{len(cells)} cells, the header has {len(header)}")
                continue
            yield line, dict(zip(header, cells))


def _jsonl_rows(path: Path, encoding: str) -> Iterator[tuple[int, Row | BadRow]]:
    with open(path, encoding=encoding) as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text.strip())
            except json.JSONDecodeError as err:
                yield line, BadRow(f"not JSON ({err.msg} at column {err.colno})")
                continue
            if not isinstance(obj, dict):
                yield line, BadRow(f"not a JSON object but {type(obj).__name__}")
                continue
            yield line, {k: _cell_text(v) for k, v in obj.items()}


def _parquet_rows(path: Path) -> Iterator[tuple[int, Row | BadRow]]:
    """Rows numbered from 1 (Parquet has no lines); typed cells become the text a mapping
    reads: timestamps and dates as ISO 8601 (map them with `format = "iso"`), lists and
    structs as JSON, as the JSON Lines reader does. Batches keep memory flat."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UnreadableExport(f"{path}: reading Parquet needs pyarrow, which this environment does not "
                               "have; pip install 'hirestream[parquet]', or export CSV or JSON Lines") from None
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UnreadableExport(f"{path}: not a Parquet file ({err})") from None
    line = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            line += 1
            yield line, {k: _cell_text(v) for k, v in row.items()}


def _cell_text(value) -> str | None:
    """A typed cell (JSON, Parquet) as the text a mapping reads, as a CSV would hold it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
