"""The event log: write/read round trip, and through Kafka (record <- topics, produce ->)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from serving.evaluation.eventlog import ReadReport, parse_speed, produce_log, read_log, record_topics, write_log
from tests import factories as f
from tests.kafka_helpers import unique_name


def events(mid="m1", jid="j1"):
    return [f.job_posted(unique_name("e"), 0, job_id=jid), f.member_upserted(unique_name("e"), 0, member_id=mid),
            f.action(unique_name("e"), "apply", 1, member_id=mid, job_id=jid),
            f.hire(unique_name("e"), 30, member_id=mid, job_id=jid)]


def test_write_read_round_trip_keeps_events_and_order(tmp_path):
    evs = events()
    assert write_log(evs, tmp_path / "log.jsonl") == 4
    recs = list(read_log(tmp_path / "log.jsonl"))
    assert [r.event for r in recs] == evs
    assert [r.seq for r in recs] == [0, 1, 2, 3] and recs[0].topic == "jobs"


def test_bare_envelope_lines_read_too(tmp_path):
    from streams.simulator import write_jsonl

    write_jsonl(events(), tmp_path / "sim.jsonl")
    report = ReadReport()
    assert [r.topic for r in read_log(tmp_path / "sim.jsonl", report)] == ["jobs", "members", "member-actions", "hires"]
    assert report.n_skipped == 0


def test_speed_parsing():
    assert parse_speed("100x") == 100.0 and parse_speed("max") is None
    with pytest.raises(ValueError, match="not a number"):
        parse_speed("fast")


def test_cli_records_the_simulator_and_replays_it(tmp_path):
    from infra.cli import main

    runner = CliRunner()
    log = tmp_path / "day.jsonl"
    out = runner.invoke(main, ["record", "--out", str(log), "--events", "1500", "--seed", "3"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["replay", str(log), "--scorer", "pop=popularity", "--scorer", "bm25=bm25@term",
                               "--engine-sample", "0.3", "--out", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    assert "pop" in out.output and (tmp_path / "rep" / "metrics.json").exists()


@pytest.mark.kafka
def test_log_goes_onto_kafka_and_is_recorded_back_in_order(kafka_bootstrap, tmp_path):
    mid, jid = unique_name("m"), unique_name("j")
    evs = events(mid, jid)
    write_log(evs, tmp_path / "log.jsonl")
    stats = produce_log(read_log(tmp_path / "log.jsonl"), kafka_bootstrap, speed=1e6, progress=False)
    assert stats.sent == 4
    report = record_topics(kafka_bootstrap, tmp_path / "recorded.jsonl", progress=False)
    mine = [r for r in read_log(tmp_path / "recorded.jsonl") if r.event.event_id in {e.event_id for e in evs}]
    assert [r.event for r in mine] == evs  # event-time order restored across topics
    assert all(r.partition is not None and r.offset is not None for r in mine)
    assert report.events >= 4
