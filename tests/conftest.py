"""Session-wide fixtures. Keep this file short: helpers live in their own modules."""
from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker with the map's topics.

    A private broker on free loopback ports for this test session (stopped at the
    end), or the cluster named by KAFKA_BOOTSTRAP when that is set.
    """
    from infra.broker import private_broker  # here, not at the top: index-only runs need no Kafka stack

    with private_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap
