"""The one scoring path in process: members that arrive together share a model call,
overload degrades and then sheds by the stated policy, a failing request fails alone,
and every answer carries the model id, timings per stage and its status."""
from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

from infra.waiting import wait_for_async
from serving.online.scoring import ScoringPolicy, ScoringService
from streams.schemas import ScoreRequest, ScoreStatus
from tests.scoring_helpers import MEMBERS, GatedScorer, RecordingScorer, engine, item_ids


def request(member_id: str, k: int = 10, deadline_ms: int = 30_000) -> ScoreRequest:
    return ScoreRequest(request_id=f"r-{member_id}", member_id=member_id, k=k, deadline_ms=deadline_ms)


def samples(service: ScoringService) -> dict[tuple[str, tuple], float]:
    text = service.metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_members_that_arrive_together_are_ranked_in_one_model_call():
    scorer = RecordingScorer()
    service = ScoringService(engine(scorer), policy=ScoringPolicy(batch_window_ms=5000, max_batch=3))

    async def main():
        return await asyncio.gather(*(service.score(request(m), time.time()) for m in MEMBERS[:3]))

    started = time.monotonic()
    results = asyncio.run(main())
    assert sorted(map(sorted, scorer.calls)) == [sorted(MEMBERS[:3])]  # one call, three members
    assert time.monotonic() - started < 4.0  # a full batch goes at once, not at the window's end
    alone = engine(RecordingScorer())
    for m, result in zip(MEMBERS, results):
        assert result.status is ScoreStatus.OK and result.error is None and result.model_id == "bm25"
        assert item_ids(result) == item_ids(alone.score(request(m), 0.0))  # the same ranking as alone
        assert result.timings_ms["batch_members"] == 3
        assert set(result.timings_ms) >= {"state", "retrieve", "queue", "rank", "total", "candidates"}
        assert any(result.items[0].reasons)


def test_overload_degrades_then_sheds_and_holds_no_more_than_queue_max():
    """Policy: queue_max=3, degrade_at=1, degraded_k=2. With the model busy on the first
    request, the next two are admitted with fewer candidates (partial) and every other
    one is shed at once, unscored."""
    scorer = GatedScorer()
    policy = ScoringPolicy(batch_window_ms=0, max_batch=1, queue_max=3, degrade_at=1, degraded_k=2)
    service = ScoringService(engine(scorer), policy=policy)

    async def main():
        first = asyncio.ensure_future(service.score(request("m1"), time.time(), via="http"))
        await wait_for_async(scorer.entered.is_set, 10, "the first model call")
        rest = [asyncio.ensure_future(service.score(request(m), time.time(), via="http"))
                for m in ["m2", "m3"] + [f"x{i}" for i in range(20)]]
        shed = await asyncio.gather(*rest[2:])  # answered while the model is still held
        assert service.depth == 3
        scorer.gate.set()
        return [await first, *await asyncio.gather(*rest[:2])], shed

    try:
        admitted, shed = asyncio.run(main())
    finally:
        scorer.gate.set()
    first, *degraded = admitted
    assert first.status is ScoreStatus.OK and first.timings_ms["candidates"] == 6
    for r in degraded:
        assert r.status is ScoreStatus.PARTIAL and "degraded under load" in r.error
        assert r.timings_ms["candidates"] == 2 and len(r.items) == 2  # fewer candidates, still ranked
        assert "rank" in r.timings_ms
    for r in shed:
        assert r.status is ScoreStatus.SHED and r.items == [] and "queue_max 3" in r.error
        assert "rank" not in r.timings_ms and "retrieve" not in r.timings_ms
    assert sorted(m for call in scorer.calls for m in call) == ["m1", "m2", "m3"]
    assert service.depth == 0
    got = samples(service)
    assert got[("hirestream_score_requests_total", (("status", "shed"), ("via", "http")))] == 20
    assert got[("hirestream_score_requests_total", (("status", "partial"), ("via", "http")))] == 2
    assert got[("hirestream_score_degraded_total", (("reason", "overload"),))] == 2
    assert got[("hirestream_scoring_queue_depth", ())] == 0


def test_a_request_that_fails_in_a_shared_model_call_fails_alone():
    scorer = RecordingScorer(fail_for="m2")
    service = ScoringService(engine(scorer), policy=ScoringPolicy(batch_window_ms=5000, max_batch=3))

    async def main():
        return await asyncio.gather(*(service.score(request(m), time.time()) for m in MEMBERS[:3]))

    by_member = {r.member_id: r for r in asyncio.run(main())}
    assert by_member["m2"].status is ScoreStatus.ERROR and "cannot score member m2" in by_member["m2"].error
    assert by_member["m1"].status is ScoreStatus.OK and by_member["m3"].status is ScoreStatus.OK
    assert by_member["m1"].items and by_member["m3"].items


def test_metrics_name_the_model_and_time_every_stage():
    service = ScoringService(engine(RecordingScorer()))
    asyncio.run(service.score(request("m1"), time.time(), via="kafka"))
    got = samples(service)
    assert got[("hirestream_model_info", (("model_id", "bm25"),))] == 1
    assert got[("hirestream_score_requests_total", (("status", "ok"), ("via", "kafka")))] == 1
    for stage in ("state", "retrieve", "queue", "rank", "total"):
        assert got[("hirestream_score_stage_seconds_count", (("stage", stage),))] == 1, stage
    assert got[("hirestream_score_batch_members_count", ())] == 1
    assert got[("hirestream_ready", ())] == 1
