import json

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra.waiting import wait_for
from kafka.errors import KafkaConfigurationError

from streams.producer import ProduceReport, make_producer, produce_file, validated_lines
from streams.schemas import serialize
from tests import factories as f
from tests.kafka_helpers import unique_name


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_file_lines_are_validated_and_rejects_keep_their_line_and_reason(tmp_path):
    good = serialize(f.action("e1", "apply")).decode()
    path = write_lines(tmp_path / "events.jsonl", [
        good,
        "{not json",
        json.dumps({**json.loads(good), "type": "member.teleported"}),
        "",
        serialize(f.job_posted("e2")).decode(),  # a different topic: routed by its type
    ])
    report = ProduceReport()
    events = list(validated_lines(path, None, report))
    assert [e.event_id for e in events] == ["e1", "e2"]
    assert [n for n, _ in report.rejected] == [2, 3]
    assert "not a JSON object" in report.rejected[0][1]
    assert "member.teleported" in report.rejected[1][1]


def test_producers_wait_for_every_in_sync_replica_and_never_write_a_retry_twice():
    """acks=all and idempotence, stated: kafka-python turns a *default* idempotence off
    quietly when an override conflicts with it; a stated one refuses the override."""
    producer = make_producer("127.0.0.1:1", api_version=(3, 9))  # api_version given: no connection
    try:
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] == -1  # "all"
        assert producer.config["retries"] > 0
    finally:
        producer.close(timeout=0)
    with pytest.raises(KafkaConfigurationError, match="acks=1"):
        make_producer("127.0.0.1:1", api_version=(3, 9), acks=1)


def test_a_topic_given_rejects_events_of_other_topics(tmp_path):
    path = write_lines(tmp_path / "e.jsonl", [serialize(f.job_posted("e1")).decode(),
                                              serialize(f.action("e2", "view")).decode()])
    report = ProduceReport()
    assert [e.event_id for e in validated_lines(path, "jobs", report)] == ["e1"]
    assert report.rejected[0][0] == 2


@pytest.mark.kafka
def test_produce_file_delivers_the_good_lines_keyed_by_member(tmp_path, kafka_bootstrap):
    mid = unique_name("m")
    lines = [serialize(f.action(unique_name("e"), "click", i, member_id=mid)).decode() for i in range(3)]
    path = write_lines(tmp_path / "e.jsonl", lines[:2] + ['{"broken"'] + lines[2:])
    report = produce_file(path, kafka_bootstrap)
    assert report.sent == 3 and len(report.rejected) == 1

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, consumer_timeout_ms=500)
    tps = [TopicPartition("member-actions", p) for p in consumer.partitions_for_topic("member-actions")]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    mine = []

    def all_three():
        mine.extend(r for r in consumer if r.key == mid.encode())
        return len(mine) >= 3
    try:
        wait_for(all_three, 60, "the three produced events")
    finally:
        consumer.close()
    assert [r.value.decode() for r in mine] == lines  # one partition per member: in order
