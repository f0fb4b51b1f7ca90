"""`hirestream import` reads Parquet exports as it reads CSV: the job-board fixture
converted to Parquet imports to the same events with the same rejections (rows are
numbered from 1, since Parquet has no lines), and typed Parquet columns (integers,
timestamps, nulls, lists) become the text a mapping reads."""
from __future__ import annotations

import csv
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from infra.cli import main
from infra.importing import import_exports, load_mapping
from serving.evaluation.eventlog import read_log

FIXTURE = Path("tests/data/jobboard")

# tests/test_import.py's REJECTED, with CSV lines turned into Parquet rows: a row is its
# CSV line less the header, and jobs.csv has two rows of several lines (multi-line descriptions).
REJECTED = [
    ("experience.parquet", 6, "duplicate: the same event as experience.parquet line 5"),
    ("experience.parquet", 8, "skipped: an internal test account"),
    ("jobs.parquet", 4, "payload.title: Field required"),
    ("jobs.parquet", 6, "duplicate: the same event as jobs.parquet line 5"),
    ("views.parquet", 6, "duplicate: the same event as views.parquet line 5"),
    ("views.parquet", 9, "event time: cannot read 'yesterday' (%Y-%m-%d %H:%M:%S): "
                         "time data 'yesterday' does not match format '%Y-%m-%d %H:%M:%S'"),
    ("views.parquet", 10, "payload.dwell_s: Input should be greater than or equal to 0"),
    ("applies.jsonl", 3, "payload: Value error, a apply action needs a job_id"),
    ("applies.jsonl", 4, "not JSON (Expecting ',' delimiter at column 74)"),
]


def _csv_to_parquet(src: Path, dst: Path) -> None:
    """Every cell as the string the CSV holds ("NA" and "" included): the same values."""
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    pq.write_table(pa.Table.from_pylist(rows), dst)


def _events(path: Path) -> list[tuple]:
    """The log's events without their ids (an id names the source line)."""
    return sorted((r.event.type, r.event.event_time, r.event.payload.model_dump_json()) for r in read_log(path))


@pytest.fixture(scope="module")
def as_parquet(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parquet")
    for name in ("experience", "jobs", "views"):
        _csv_to_parquet(FIXTURE / f"{name}.csv", folder / f"{name}.parquet")
    shutil.copy(FIXTURE / "applies.jsonl", folder)
    mapping = (FIXTURE / "mapping.toml").read_text()
    (folder / "mapping.toml").write_text(re.sub(r'\.csv"', '.parquet"', mapping))
    return folder / "mapping.toml"


def test_the_fixture_as_parquet_imports_to_the_same_events_and_rejections(as_parquet, tmp_path):
    from_csv, from_parquet = tmp_path / "csv.jsonl", tmp_path / "parquet.jsonl"
    import_exports(load_mapping(FIXTURE / "mapping.toml"), from_csv)
    report = import_exports(load_mapping(as_parquet), from_parquet)
    assert report.rejected == REJECTED
    assert dict(report.rows) == {"experience.parquet": 8, "jobs.parquet": 7, "views.parquet": 13, "applies.jsonl": 5}
    assert _events(from_parquet) == _events(from_csv) and len(_events(from_csv)) == 24


def test_the_import_command_reads_parquet(as_parquet, tmp_path):
    result = CliRunner().invoke(main, ["import", str(as_parquet), "--out", str(tmp_path / "jb.jsonl")])
    assert result.exit_code == 0, result.output
    assert "wrote 24 events" in result.output and "rejected jobs.parquet:4: payload.title: Field required" in result.output


def test_typed_parquet_columns_read_as_their_text(tmp_path):
    """Integer ids, UTC timestamps (ISO 8601 text, so `format = "iso"`), a null end (an
    open-ended view) and a list column the mapping does not use."""
    start = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    table = pa.table({
        "applicant": pa.array([10001, 10002], pa.int64()),
        "job": pa.array(["J-001", "j-002"]),
        "start": pa.array([start, start.replace(hour=11)], pa.timestamp("us", tz="UTC")),
        "end": pa.array([start.replace(minute=32, second=30), None], pa.timestamp("us", tz="UTC")),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
    })
    pq.write_table(table, tmp_path / "views.parquet", row_group_size=1)  # two row groups
    (tmp_path / "mapping.toml").write_text(
        '[[sources]]\nfile = "views.parquet"\nevent = "member.action"\ntime = { column = "start", format = "iso" }\n'
        '[sources.fields]\nmember_id = { column = "applicant", id = true, prefix = "m" }\n'
        'job_id = { column = "job", id = true }\naction = { value = "view" }\n'
        'dwell_s = { seconds_from = "start", seconds_to = "end" }\n')
    report = import_exports(load_mapping(tmp_path / "mapping.toml"), tmp_path / "out.jsonl")
    assert report.rejected == []
    got = [(r.event.event_id, r.event.event_time, r.event.payload.member_id, r.event.payload.job_id,
            r.event.payload.dwell_s) for r in read_log(tmp_path / "out.jsonl")]
    assert got == [("views-1", start, "m10001", "j-001", 150.0),
                   ("views-2", start.replace(hour=11), "m10002", "j-002", None)]


def test_a_file_that_is_not_parquet_is_a_clear_error(tmp_path):
    (tmp_path / "views.parquet").write_bytes(b"Applicant.ID,Job.ID\n1,2\n")  # a CSV named .parquet
    (tmp_path / "mapping.toml").write_text(
        '[[sources]]\nfile = "views.parquet"\nevent = "member.action"\ntime = { column = "t" }\n'
        '[sources.fields]\nmember_id = { column = "Applicant.ID" }\n')
    result = CliRunner().invoke(main, ["import", str(tmp_path / "mapping.toml"), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1
    assert "views.parquet" in result.output and "not a Parquet file" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_missing_export_is_a_clear_error(as_parquet, tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(as_parquet.read_text())  # its files are relative to it: none are here
    result = CliRunner().invoke(main, ["import", str(mapping), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "experience.parquet: no such file" in result.output
