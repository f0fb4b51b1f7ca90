"""`streams.processing` in a real worker: a dead letter the broker refuses stops the
worker before anything past it is committed, and a restart applies every event.

In its own module so that no other test's worker is running while the dead-letter
topic is made to refuse large records (any worker would dead-letter the same message).
"""
from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from infra.waiting import wait_for
from streams.delivery import EXIT_FATAL
from streams.producer import make_producer
from streams.schemas import serialize
from tests import factories as f
from tests.kafka_helpers import unique_name
from tests.stream_helpers import member_with
from tests.test_stream_worker import dead_letters, everything_committed, start_worker

pytestmark = pytest.mark.kafka

DLQ = "member-actions.dlq"
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588


def set_max_message_bytes(admin: KafkaAdminClient, topic: str, limit: int) -> None:
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})])


def test_a_dead_letter_the_broker_refuses_is_never_committed_over(kafka_bootstrap, tmp_path):
    app_id = unique_name("hs-dlq-refused")
    mid = unique_name("m")
    bad = b"{" + b"x" * 20_000  # not JSON; its dead letter is over the limit set below
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id)
    try:
        # A new group starts at the earliest offset: let it work through what earlier
        # tests produced (some of it dead-lettered) before the DLQ refuses large records.
        worker.wait_for(lambda: everything_committed(worker), 180, "the earlier events committed")
        set_max_message_bytes(admin, DLQ, 4096)
        producer = make_producer(kafka_bootstrap)
        for i in range(6):
            if i == 3:
                sent = producer.send("member-actions", key=mid.encode(), value=bad).get(timeout=30)
            producer.send("member-actions", key=mid.encode(),
                          value=serialize(f.action(f"{mid}-{i}", "view", i / 10, member_id=mid, job_id=f"j{i}")))
        producer.close()
        wait_for(lambda: not worker.alive, 60, "the worker to stop on the refused dead letter")
        assert worker.proc.returncode == EXIT_FATAL, worker.log_tail()
        committed = admin.list_group_offsets(app_id)[app_id].get(TopicPartition("member-actions", sent.partition))
        assert committed is None or committed.offset <= sent.offset  # the message will be read again

        set_max_message_bytes(admin, DLQ, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
        worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id)
        state = member_with(worker, mid, lambda v: v["counts"].get("view", 0) >= 6, "every valid event")
        assert state["counts"] == {"view": 6}
        mine = lambda recs: [r for r in recs if r.key == mid.encode()]  # noqa: E731
        [record] = mine(dead_letters(kafka_bootstrap, "member-actions", mine))
        assert dict(record.headers)["source_offset"] == str(sent.offset).encode()
        assert record.value == bad
        assert (worker.stats() or {}).get("dead_letters", {}).get("member-actions", 0) >= 1  # once delivered
    finally:
        set_max_message_bytes(admin, DLQ, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
        admin.close()
        worker.stop()
