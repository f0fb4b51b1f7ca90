"""Session-wide fixtures. Keep this file short: helpers live in their own modules."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka_helpers import private_broker, wait_for  # noqa: F401  (wait_for: re-exported)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker with the map's topics.

    A private broker on free loopback ports for this test session (stopped at the
    end), or the cluster named by KAFKA_BOOTSTRAP when that is set.
    """
    with private_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap
