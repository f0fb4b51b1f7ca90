"""`hirestream import`: the job-board fixture (tests/data/jobboard/) through its mapping
into a validated, sorted log, with exactly the rejections and unknowns its gaps make;
`hirestream validate` and `hirestream sort` on their own."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from infra.cli import main
from infra.importing import import_exports, load_mapping
from serving.evaluation.eventlog import check_log, read_log
from streams.schemas import Seniority

FIXTURE = "tests/data/jobboard/mapping.toml"

REJECTED = [
    ("experience.csv", 7, "duplicate: the same event as experience.csv line 6"),
    ("experience.csv", 9, "skipped: an internal test account"),
    ("jobs.csv", 9, "payload.title: Field required"),  # "NA" title and "NA" position: nothing says what it is
    ("jobs.csv", 11, "duplicate: the same event as jobs.csv line 10"),  # line 5-8: one row, a multi-line description
    ("views.csv", 7, "duplicate: the same event as views.csv line 6"),
    ("views.csv", 10, "event time: cannot read 'yesterday' (%Y-%m-%d %H:%M:%S): "
                      "time data 'yesterday' does not match format '%Y-%m-%d %H:%M:%S'"),
    ("views.csv", 11, "payload.dwell_s: Input should be greater than or equal to 0"),  # ends before it starts
    ("applies.jsonl", 3, "payload: Value error, a apply action needs a job_id"),
    ("applies.jsonl", 4, "not JSON (Expecting ',' delimiter at column 74)"),
]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("import") / "jobboard.jsonl"
    report = import_exports(load_mapping(FIXTURE), out, chunk=4, rejected_path=out.with_suffix(".rejected.tsv"))
    return out, report


def test_the_fixture_imports_with_exactly_the_rejections_its_gaps_make(imported):
    out, report = imported
    assert report.rejected == REJECTED
    assert [tuple(x.split("\t")) for x in out.with_suffix(".rejected.tsv").read_text().splitlines()] == \
        [(f, str(n), r) for f, n, r in sorted(REJECTED, key=lambda r: r[2].startswith("duplicate"))]
    assert dict(report.rows) == {"experience.csv": 8, "jobs.csv": 7, "views.csv": 13, "applies.jsonl": 5}
    assert report.events == 33 - len(REJECTED)


def test_fields_left_unknown_are_counted_and_left_to_the_schemas_unknown(imported):
    out, report = imported
    assert dict(report.unknown) == {
        ("experience.csv", "title"): 2, ("experience.csv", "location"): 1, ("jobs.csv", "title"): 1,
        ("jobs.csv", "occupation"): 1, ("jobs.csv", "location"): 1, ("views.csv", "dwell_s"): 2,
        ("applies.jsonl", "job_id"): 1}
    assert report.unmapped["jobs.csv"] == ["promoted", "seniority", "skills"]
    events = {r.event.event_id: r.event for r in read_log(out)}
    nameless = events["experience-6"].payload  # "NA" position
    assert (nameless.title, nameless.seniority, nameless.years_experience) == ("", Seniority.UNKNOWN, None)
    assert events["jobs-4"].payload.title == "Software Developer"  # "NA" title: the position instead
    assert events["jobs-5"].payload.description == "Dashboards, SQL and\na little Python.\n\nHybrid working."
    assert events["jobs-5"].payload.location == ""  # no city, no region
    assert events["views-4"].payload.dwell_s is None  # open-ended view
    assert events["views-2"].payload.dwell_s == 150.0
    assert events["applies-5"].payload.member_id == "m10004"  # "10004.0"
    assert events["applies-5"].payload.job_id == "j-003"  # "j-003" and "J-003" are one job


def test_the_log_is_valid_and_in_event_time_order(imported):
    out, _ = imported
    check = check_log(out)
    assert (check.report.events, check.report.n_skipped, check.first_unsorted) == (24, 0, None)
    assert [r.seq for r in read_log(out)] == list(range(24))


def test_validate_and_sort_commands(imported, tmp_path):
    out, _ = imported
    lines = out.read_text().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(lines[::-1] + ["{not json"]) + "\n")
    runner = CliRunner()
    bad = runner.invoke(main, ["validate", str(shuffled)])
    assert bad.exit_code == 1
    assert f"{shuffled}:25: not JSON" in bad.output and "NOT in event-time order (first at line 2" in bad.output
    sorted_ = runner.invoke(main, ["sort", str(shuffled), "--chunk", "5"])
    assert sorted_.exit_code == 0 and "sorted 24 events" in sorted_.output and "dropped 1 invalid" in sorted_.output
    assert runner.invoke(main, ["validate", str(shuffled)]).exit_code == 0
    assert [json.loads(x)["event"] for x in shuffled.read_text().splitlines()] == \
        [json.loads(x)["event"] for x in lines]


def test_the_import_command_reports_rejections_and_unknowns(tmp_path):
    result = CliRunner().invoke(main, ["import", FIXTURE, "--out", str(tmp_path / "jb.jsonl")])
    assert result.exit_code == 0, result.output
    assert "wrote 24 events" in result.output and "rejected 9 rows" in result.output
    assert "rejected jobs.csv:9: payload.title: Field required" in result.output
    assert "views.csv:dwell_s 2" in result.output


def test_a_mapping_with_a_field_the_event_lacks_is_refused(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[[sources]]\nfile = "x.csv"\nevent = "job.posted"\ntime = { column = "t" }\n'
                   '[sources.fields]\njob_title = { column = "Title" }\n')
    result = CliRunner().invoke(main, ["import", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "has no field(s) ['job_title']" in result.output


def test_replay_of_the_fixture_evaluates_views(imported):
    from serving.evaluation.replay import ReplayConfig, Variant, replay_file
    from serving.online.scorer import BM25Scorer, PopularityScorer

    out, _ = imported
    result = replay_file(out, [Variant("popularity", PopularityScorer()), Variant("bm25", BM25Scorer())],
                         ReplayConfig(tasks=(), engine_sample=0.0))
    assert result.config.slates == "views" and result.config.tasks == ("view", "dwell", "apply")
    view = result.metrics["bm25"]["all"]["view"]["all"]
    assert view["requests"] == 6 and view["positives"] == 9


# ---- what makes the import fast must not change what it writes --------------------


def test_the_import_writes_the_same_log_whatever_the_chunk(imported, tmp_path):
    """Spilled runs (chunk 4: several merges) and one in-memory chunk give the same
    bytes, and every line is what write_log writes for the event read back from it."""
    from serving.evaluation.eventlog import _line

    out, _ = imported
    whole = tmp_path / "whole.jsonl"
    import_exports(load_mapping(FIXTURE), whole, chunk=10_000)
    assert whole.read_bytes() == out.read_bytes()
    assert b"".join(_line(rec) for rec in read_log(out)) == out.read_bytes()


def test_the_content_hash_is_the_event_without_its_id(imported):
    """Repeats are found, and ties ordered, by a hash cut out of the wire bytes: it must
    be the hash of the event serialised without its event id."""
    import hashlib

    from infra.importing.convert import _content
    from streams.schemas import serialize

    out, _ = imported
    for rec in read_log(out):
        expected = hashlib.blake2b(rec.event.model_dump_json(by_alias=True, exclude={"event_id"}).encode(),
                                   digest_size=12).digest()
        assert _content(rec.event, serialize(rec.event)) == expected


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y%m%d", "%d %b %Y"])
def test_time_patterns_parse_as_strptime_does(fmt):
    """The fixed-width fast path gives strptime's result, or strptime's error, for
    padded, unpadded, out-of-range and doubled-space text."""
    import random
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from infra.importing.mapping import TimeRule

    rule = TimeRule(column="t", format=fmt, timezone="Europe/London")
    rng = random.Random(0)
    for _ in range(2000):
        text = fmt
        for d, choices in {"Y": ["2026", "0000", "202"], "m": ["01", "1", "12", "13", "00"],
                           "d": ["01", "31", "29", "1", "32"], "H": ["00", "23", "24", "7"],
                           "M": ["00", "59", "60"], "S": ["00", "59", "61"], "b": ["Jan", "jan", "Foo"]}.items():
            text = text.replace(f"%{d}", rng.choice(choices))
        text = text.replace(" ", "  ") if rng.random() < 0.1 else text
        try:
            expected = datetime.strptime(text, fmt).replace(tzinfo=ZoneInfo("Europe/London"))
        except ValueError as err:
            with pytest.raises(ValueError, match=re.escape(str(err))):
                rule.parse(text)
        else:
            got = rule.parse(text)
            assert (got, got.tzinfo) == (expected, expected.tzinfo), text


def test_sort_keeps_the_first_of_equal_keys_and_spills_nothing_it_cannot_read_back(tmp_path):
    """sort_log over several runs: ties in key keep their input order, and the result is
    the same as sorting in one chunk."""
    from serving.evaluation.eventlog import sort_log
    from tests import factories as f

    events = [f.action(f"e{i}", "view", i % 3, member_id=f"m{i}", job_id="j1") for i in range(20)]
    recs = list(read_log(_written(events, tmp_path / "in.jsonl")))
    by_time = lambda r: (r.t,)  # noqa: E731 - ties everywhere
    sort_log(recs, tmp_path / "runs.jsonl", chunk=3, key=by_time)
    sort_log(recs, tmp_path / "one.jsonl", chunk=100, key=by_time)
    assert (tmp_path / "runs.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    ids = [r.event.event_id for r in read_log(tmp_path / "runs.jsonl")]
    assert ids == [e.event_id for e in sorted(events, key=lambda e: e.event_time)]  # stable
    assert [r.seq for r in read_log(tmp_path / "runs.jsonl")] == list(range(20))


def _written(events, path):
    from serving.evaluation.eventlog import write_log

    write_log(events, path)
    return path
