"""Test helpers around the real Kafka broker (the broker and the waiting live in infra/).

Waiting on a condition is `infra.waiting.wait_for`, as everywhere else.
"""
from __future__ import annotations

import shutil
import uuid

from infra import broker


def free_port() -> int:
    """A loopback port free right now (for a worker's web port, say)."""
    return broker.free_ports(1)[0]


def unique_name(prefix: str) -> str:
    """A topic, group or value no other test (or earlier run) has used."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def java_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client (and kafka-python, aiokafka, faust) picks for a key."""
    from kafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def require_kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise RuntimeError("kcat is not installed; run `bash infra/kcat.sh` (apt-get install -y kcat)")
    return path




def uncommitted(bootstrap: str, group: str, topics: list[str]) -> dict:
    """Each partition of `topics` whose end offset is past `group`'s committed offset,
    with how far behind it is: empty once the group has committed everything."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        committed = admin.list_group_offsets({group: parts})[group]
        ends = consumer.end_offsets(parts)
        behind = {tp: ends[tp] - max(committed[tp].offset if tp in committed else 0, 0) for tp in parts}
        return {f"{tp.topic}-{tp.partition}": n for tp, n in behind.items() if n > 0}
    finally:
        consumer.close()
        admin.close()
