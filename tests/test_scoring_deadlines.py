"""The scoring service's deadline rules, in process: a request is never scored once its
deadline has passed, whether it arrived late, the replica was still catching up, or
the model had not got to it yet (then it gets the index's order, flagged partial)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from infra.waiting import wait_for_async
from serving.online.scoring import ScoringPolicy, ScoringService
from streams.schemas import ScoreRequest, ScoreStatus
from tests.scoring_helpers import GatedScorer, RecordingScorer, engine, item_ids, retrieval_order


class NeverReady:
    """A replica stuck mid-bootstrap, recording how long the service was willing to wait."""

    ready = False
    lag = 7

    def __init__(self):
        self.waits: list[float] = []

    def wait_ready(self, timeout):
        self.waits.append(timeout)
        time.sleep(timeout)  # the replica's own blocking wait, as IndexReplica.wait_ready blocks
        return False


class NeverScores(RecordingScorer):
    def score_batch(self, jobs):
        pytest.fail("scored after the deadline")


def request(member_id: str = "m1", deadline_ms: int = 1000, k: int = 3) -> ScoreRequest:
    return ScoreRequest(request_id=f"r-{member_id}", member_id=member_id, deadline_ms=deadline_ms, k=k)


@pytest.fixture
def gated():
    scorer = GatedScorer()
    yield scorer
    scorer.gate.set()  # never leave the model thread blocked


def test_a_request_that_arrives_late_is_expired_without_waiting():
    replica = NeverReady()
    service = ScoringService(engine(NeverScores()), replica=replica)
    sent = (datetime.now(timezone.utc) - timedelta(seconds=3)).timestamp()
    result = asyncio.run(service.score(request(deadline_ms=1000), sent))
    assert result.status is ScoreStatus.EXPIRED and "on arrival" in result.error
    assert result.items == [] and "rank" not in result.timings_ms
    assert replica.waits == []


def test_a_request_waits_for_the_replica_only_until_its_deadline():
    replica = NeverReady()
    service = ScoringService(engine(NeverScores()), replica=replica)
    started = time.monotonic()
    result = asyncio.run(service.score(request(deadline_ms=300), time.time()))
    assert result.status is ScoreStatus.EXPIRED and "had not caught up" in result.error
    assert len(replica.waits) == 1 and 0 < replica.waits[0] <= 0.3
    assert time.monotonic() - started < 2.0
    assert service.readiness()["index_replica_caught_up"] is False


def test_the_deadline_during_ranking_answers_the_index_order_flagged_partial(gated):
    e = engine(gated)
    service = ScoringService(e, policy=ScoringPolicy(batch_window_ms=0))
    result = asyncio.run(service.score(request(deadline_ms=300), time.time()))
    assert gated.entered.is_set()  # the model call had started and was still running
    assert result.status is ScoreStatus.PARTIAL and "deadline reached before ranking" in result.error
    assert item_ids(result) == retrieval_order(e, "m1", 3)  # what was ready: the index's order
    assert "rank" not in result.timings_ms and result.timings_ms["total"] < 2000
    ok = ScoringService(engine(RecordingScorer())).engine.score(request(), 0.0)
    assert item_ids(result) != item_ids(ok), "BM25's order must differ from the index's for this to mean anything"


def test_a_request_answered_at_its_deadline_is_left_out_of_the_next_model_call(gated):
    service = ScoringService(engine(gated), policy=ScoringPolicy(batch_window_ms=0, max_batch=8))

    async def main():
        first = asyncio.ensure_future(service.score(request("m1", deadline_ms=30_000), time.time()))
        await wait_for_async(gated.entered.is_set, 10, "the first model call")
        late = await service.score(request("m2", deadline_ms=200), time.time())  # queued behind it
        gated.gate.set()
        # one more request after both: the batcher takes jobs in order, so once it is
        # answered, m2's queued job has been either skipped or scored
        return await first, late, await service.score(request("m3"), time.time())

    first, late, after = asyncio.run(main())
    assert first.status is ScoreStatus.OK and late.status is ScoreStatus.PARTIAL and after.status is ScoreStatus.OK
    assert [m for call in gated.calls for m in call] == ["m1", "m3"]  # m2 was answered already: never scored


class SlowBodyClock:
    """A clock the test moves: `SlowBody` turns it forward while a request's body is
    being read, as a loaded server's loop would take that long to get to it."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SlowBody:
    """ASGI in front of the API: the request's body arrives `delay_s` (on the test's
    clock) after the request reached the server."""

    def __init__(self, app, clock: SlowBodyClock, delay_s: float):
        self.app, self.clock, self.delay_s = app, clock, delay_s

    async def __call__(self, scope, receive, send):
        async def slow_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.clock.now += self.delay_s
            return message
        await self.app(scope, slow_receive, send)


def test_an_http_deadline_counts_from_when_the_request_reached_the_server_not_from_its_handler(monkeypatch):
    """The deadline started in the handler: a request whose body read, middlewares and
    validation took longer than its deadline (a loaded worker's loop) was still
    scored, as if just sent. That wait is inside the deadline now."""
    from types import SimpleNamespace

    import httpx

    from serving.online import http_api
    from serving.online.http_api import create_app

    clock = SlowBodyClock()
    # the server's one clock is the test's (before the fix the handler read `time.time()`)
    monkeypatch.setattr(http_api, "time", SimpleNamespace(time=clock), raising=False)
    service = ScoringService(engine(NeverScores()), clock=clock)
    api = SlowBody(create_app(service), clock, delay_s=5.0)

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as http:
            return await http.post("/v1/rank", json={"member_id": "m1", "k": 3, "deadline_ms": 1000})

    reply = asyncio.run(main())
    assert reply.status_code == 504
    result = reply.json()
    assert result["status"] == "expired" and "on arrival" in result["error"] and result["items"] == []
