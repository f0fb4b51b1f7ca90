"""Test helpers around the real Kafka broker (the broker and the waiting live in infra/).

Waiting on a condition is `infra.waiting.wait_for`, as everywhere else.
"""
from __future__ import annotations

import os
import shutil
import uuid

# The cluster the person running the tests named, read when the tests are collected:
# the session fixture later exports its own broker's address in KAFKA_BOOTSTRAP too.
USER_CLUSTER = os.environ.get("KAFKA_BOOTSTRAP") or None


def free_port() -> int:
    """A loopback port free right now (for a worker's web port, say)."""
    from infra import broker  # here: conftest imports this module, and index-only runs need no Kafka stack

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
