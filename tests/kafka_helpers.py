"""Test helpers around the real Kafka broker: a private broker per test session, and waits.

Imported by `tests/conftest.py`; tests may import from here directly
(`from tests.kafka_helpers import wait_for`).
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from infra import broker
from streams.settings import get_settings

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Poll `predicate` until it returns something truthy; return that value.

    Raises TimeoutError naming `what` after `timeout` seconds. Exceptions of the
    types in `ignore` count as "not yet" (the last one is chained on timeout).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as err:
            last_error = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}") from last_error
        time.sleep(interval)  # a polling interval inside a deadline, not a synchronization


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


@contextmanager
def private_broker(data_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """A broker for one test session, with the map's topics; yields its bootstrap address.

    With KAFKA_BOOTSTRAP set, that cluster is used and nothing is started. Otherwise
    a broker runs from `data_dir` on free loopback ports, and KAFKA_BOOTSTRAP is set
    to it for the session, so `get_settings()` and any `hirestream` subprocess a
    test starts find it too.
    """
    external = broker.external_bootstrap()
    if external:
        broker.wait_until_ready(external, timeout)
        broker.create_topics(external)
        yield external
        return
    port, controller_port = broker.free_ports(2)
    cfg = broker.BrokerConfig(
        data_dir=data_dir, port=port, controller_port=controller_port,
        default_partitions=get_settings().member_partitions, die_with_parent=True,
    )
    broker.start(cfg, broker.fetch_jars(), timeout=timeout)
    os.environ[broker.EXTERNAL_BOOTSTRAP_ENV] = cfg.bootstrap
    get_settings.cache_clear()
    try:
        broker.create_topics(cfg.bootstrap)
        yield cfg.bootstrap
    finally:
        os.environ.pop(broker.EXTERNAL_BOOTSTRAP_ENV, None)
        get_settings.cache_clear()
        broker.stop(cfg)
