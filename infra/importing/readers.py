"""Rows out of export files, one at a time, each with the line it starts on."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

Row = dict[str, str | None]


class BadRow(ValueError):
    """A row that cannot be read at all (a JSON line that is not JSON)."""


def read_rows(path: Path, kind: str, delimiter: str = ",", encoding: str = "utf-8") -> Iterator[tuple[int, Row | BadRow]]:
    """(line, row) in file order; a row that is not a row comes as a BadRow, so the
    caller reports it and reads on. Memory holds one row."""
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
            yield line, {k: None if v is None else v if isinstance(v, str) else json.dumps(v)
                         if isinstance(v, (dict, list)) else str(v) for k, v in obj.items()}


def _parquet_rows(path: Path) -> Iterator[tuple[int, Row | BadRow]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("reading Parquet needs pyarrow, which this environment does not have "
                           "(it is not a dependency of hirestream); export CSV or JSON Lines instead") from None
    line = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):  # row number = "line"
        for row in batch.to_pylist():
            line += 1
            yield line, {k: None if v is None else str(v) for k, v in row.items()}
