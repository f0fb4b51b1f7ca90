"""Session-wide fixtures. Keep this file short: helpers live in their own modules."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The session's shared broker makes the map's topics with 3 partitions, not the
# default 12: each of the suite's many worker starts and restores then opens a
# quarter of the RocksDB partitions, and `make test` stays within its time on two
# cores. tests/test_scale_out.py runs its workers against a broker of its own with the
# default count. An existing cluster (KAFKA_BOOTSTRAP) keeps the settings' count, or
# HIRESTREAM_MEMBER_PARTITIONS when set: it must match that cluster's topics.
# Set here, before any test module reads `streams.settings`; the workers tests start
# inherit it.
# No `.env` file is read (HIRESTREAM_ENV_FILE empty): a developer's .env must not
# change what the tests (or the workers they start, which inherit this) see.
os.environ["HIRESTREAM_ENV_FILE"] = ""
if not os.environ.get("KAFKA_BOOTSTRAP"):
    os.environ.setdefault("HIRESTREAM_MEMBER_PARTITIONS", "3")

from tests import kafka_helpers  # noqa: E402,F401  (notes KAFKA_BOOTSTRAP before the session broker sets it)

pytest.register_assert_rewrite("tests.stream_helpers")  # its asserts say what differed, as in a test module


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker with the map's topics.

    A private broker on free loopback ports for this test session (stopped at the
    end), or the cluster named by KAFKA_BOOTSTRAP when that is set.
    """
    from infra.broker import private_broker  # here, not at the top: index-only runs need no Kafka stack

    with private_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def both_cores():
    """Torch on up to 2 threads for one module's model tests, the process-wide count put
    back after (several modules set it to 1 on import, for their determinism checks)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield torch.get_num_threads()
    torch.set_num_threads(before)
