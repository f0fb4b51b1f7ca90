"""The scoring agent's deadline rules, in process: a request is never scored once its
deadline has passed, whether it arrived late or the replica was still catching up."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from streams.schemas import ScoreRequest, ScoreRequested, ScoreStatus


class NeverReady:
    """A replica stuck mid-bootstrap, recording how long the agent was willing to wait."""

    ready = False

    def __init__(self):
        self.waits: list[float] = []

    def wait_ready(self, timeout):
        self.waits.append(timeout)
        time.sleep(timeout)
        return False


@pytest.fixture
def agent(monkeypatch):
    from serving import scoring_agent

    replica = NeverReady()
    monkeypatch.setattr(scoring_agent, "replica", replica)
    monkeypatch.setattr(scoring_agent.engine, "score", lambda *a: pytest.fail("scored after the deadline"))
    return scoring_agent, replica


def request(sent: datetime, deadline_ms: int) -> ScoreRequested:
    return ScoreRequested(event_id="e1", event_time=sent,
                          payload=ScoreRequest(request_id="r1", member_id="m1", deadline_ms=deadline_ms))


def test_a_request_that_arrives_late_is_expired_without_waiting(agent):
    scoring_agent, replica = agent
    late = request(datetime.now(timezone.utc) - timedelta(seconds=3), 1000)
    result = asyncio.run(scoring_agent.answer(late)).payload
    assert result.status is ScoreStatus.EXPIRED and "on arrival" in result.error
    assert replica.waits == []


def test_a_request_waits_for_the_replica_only_until_its_deadline(agent):
    scoring_agent, replica = agent
    started = time.monotonic()
    result = asyncio.run(scoring_agent.answer(request(datetime.now(timezone.utc), 300))).payload
    assert result.status is ScoreStatus.EXPIRED and "had not caught up" in result.error
    assert len(replica.waits) == 1 and 0 < replica.waits[0] <= 0.3
    assert time.monotonic() - started < 2.0
