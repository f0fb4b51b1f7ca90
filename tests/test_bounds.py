"""Bounds on size and event time (streams.bounds), in process and in a real worker."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from streams.bounds import EventBounds, event_time_reason, judging_clock, parse_bounded
from streams.schemas import InvalidEvent, JobClosed, JobClosedEvent, JobUpdated, parse, serialize
from tests import factories as f

BOUNDS = EventBounds(max_event_bytes=4096, event_time_min=datetime(2000, 1, 1, tzinfo=timezone.utc),
                     event_time_max_ahead_s=86_400)
NOW = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp()


def _at(when: datetime) -> bytes:
    return serialize(f.action("e1", "apply").model_copy(update={"event_time": when}))


@pytest.mark.parametrize("when, reason_part", [
    (datetime(9999, 1, 1, tzinfo=timezone.utc), "ahead of the clock"),
    (datetime(1999, 12, 31, tzinfo=timezone.utc), "before event_time_min"),
    (datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=1, seconds=5), "ahead of the clock"),
])
def test_unbelievable_event_times_are_invalid(when, reason_part):
    with pytest.raises(InvalidEvent) as info:
        parse_bounded("member-actions", _at(when), BOUNDS, NOW)
    assert reason_part in info.value.reason and when.isoformat()[:10] in info.value.reason


@pytest.mark.parametrize("when", [
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime.fromtimestamp(NOW, timezone.utc) + timedelta(hours=23),
    datetime.fromtimestamp(NOW, timezone.utc) - timedelta(days=3000),
])
def test_event_times_inside_the_window_pass(when):
    assert parse_bounded("member-actions", _at(when), BOUNDS, NOW).event_time == when


def test_a_redelivery_is_judged_by_its_kafka_timestamp_not_the_later_clock():
    """An event 2 days ahead of its Kafka timestamp stays refused when re-read a week later."""
    produced_at = NOW
    event = parse("member-actions", _at(datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=2)))
    assert event_time_reason(event, judging_clock(produced_at, now=NOW + 7 * 86_400), BOUNDS)
    # A producer that sets a far-future Kafka timestamp gains nothing: the reader's clock wins.
    assert event_time_reason(event, judging_clock(NOW + 10 * 86_400, now=NOW), BOUNDS)


def test_oversize_values_are_refused_before_parsing():
    raw = b"{" + b" " * 5000 + b"}"
    with pytest.raises(InvalidEvent, match="5002 bytes exceeds max_event_bytes=4096"):
        parse_bounded("member-actions", raw, BOUNDS, NOW)


def test_ids_are_bounded_and_free_of_control_characters():
    good = json.loads(serialize(f.action("e1", "apply")))
    for bad_id, reason in [("x" * 129, "at most 128"), ("a\x00b", "pattern"), ("a\nb", "pattern")]:
        with pytest.raises(InvalidEvent, match=reason):
            parse("member-actions", json.dumps({**good, "event_id": bad_id}))
    assert parse("member-actions", json.dumps({**good, "event_id": "x" * 128})).event_id == "x" * 128


@pytest.mark.kafka
def test_a_far_future_update_is_dead_lettered_and_the_job_still_closes(kafka_bootstrap, tmp_path):
    """Finding 6: a year-9999 `job.updated` used to be applied, so the catalog's time
    was 9999 and every later close looked older: the job never closed."""
    from infra.worker_process import WorkerProcess
    from streams.producer import EventProducer
    from tests.hostile import read_dead_letters
    from tests.kafka_helpers import free_port, unique_name

    jid = unique_name("j")
    far = JobUpdated(event_id=unique_name("far"), event_time=datetime(9999, 1, 1, tzinfo=timezone.utc),
                     payload=f.job(job_id=jid, title="Pinned"))
    old = JobUpdated(event_id=unique_name("old"), event_time=datetime(1970, 1, 2, tzinfo=timezone.utc),
                     payload=f.job(job_id=jid, title="Ancient"))
    close = JobClosedEvent(event_id=unique_name("close"), event_time=f.at(2), payload=JobClosed(job_id=jid))
    worker = WorkerProcess(kafka_bootstrap, tmp_path, free_port(), app_id=unique_name("hs-bounds"),
                           broker_session_timeout=6.0, broker_heartbeat_interval=2.0).start()
    try:
        worker.wait_ready(timeout=90)
        with EventProducer(kafka_bootstrap) as p:
            p.send(f.job_posted(unique_name("e"), 0, job_id=jid))
            p.send(far)
            p.send(old)
            p.send(close)
        closed = worker.wait_for(lambda: (j := worker.job(jid)) and not j["open"] and j, 60, "the job closed")
        assert closed["job"]["title"] == "Senior Data Engineer"  # neither bad update applied
        letters = read_dead_letters(kafka_bootstrap, "jobs", {far.event_id, old.event_id})
        assert "ahead of the clock" in letters[far.event_id]["error"]
        assert "before event_time_min" in letters[old.event_id]["error"]
    finally:
        worker.stop()


def test_texts_refuse_control_characters_but_free_text_keeps_lines():
    good = json.loads(serialize(f.member_upserted("e1")))
    with pytest.raises(InvalidEvent, match="payload.title"):
        parse("members", json.dumps({**good, "payload": {**good["payload"], "title": "a\x00b"}}))
    about = "line one\nline two\ttabbed"
    assert parse("members", json.dumps({**good, "payload": {**good["payload"], "about": about}})).payload.about == about


def test_results_fit_their_bounds_whatever_they_are_built_from():
    from serving.online.results import result_event_id, score_result, scored_item
    from streams.schemas import ID_MAX, ScoreCompleted

    long_id = "r" * ID_MAX
    item = scored_item("j1", float("nan"), ["x" * 500, "a\x00b"] + ["r"] * 20)
    result = score_result(long_id, "m1", items=[item] * 600, model_id="ranker:" + "/d" * 200,
                          timings_ms={f"t{i}": float("inf") for i in range(40)}, error="e\x1b" * 4000)
    completed = ScoreCompleted(event_id=result_event_id(long_id), event_time=f.T0, payload=result)
    assert parse("score-results", serialize(completed)) == completed  # valid and round-trips
    assert result_event_id(long_id) != result_event_id(long_id[:-1] + "s")  # still one per request


def test_the_file_loader_reports_what_the_worker_would_dead_letter(tmp_path):
    from streams.producer import ProduceReport, validated_lines

    good = serialize(f.action("e1", "apply")).decode()
    future = _at(datetime(9999, 1, 1, tzinfo=timezone.utc)).decode()
    path = tmp_path / "day.jsonl"
    path.write_text(f"{good}\n{future}\n")
    report = ProduceReport()
    assert [e.event_id for e in validated_lines(path, None, report)] == ["e1"]
    assert report.rejected[0][0] == 2 and "ahead of the clock" in report.rejected[0][1]


def test_numbers_are_bounded_too():
    good = json.loads(serialize(f.company("e1")))
    with pytest.raises(InvalidEvent, match="payload.size"):
        parse("companies", json.dumps({**good, "payload": {**good["payload"], "size": 10 ** 30}}))
