"""The scoring agent against the real broker: jobs, a member and actions in, a
correct score-result out of Kafka."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra.waiting import wait_for
from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from streams.schemas import ID_MAX, ScoreRequest, ScoreRequested, ScoreStatus, parse
from tests import factories as f
from tests.kafka_helpers import free_port, unique_name

pytestmark = pytest.mark.kafka

FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)


@pytest.fixture(scope="module")
def serving_worker(kafka_bootstrap, tmp_path_factory):
    w = WorkerProcess(kafka_bootstrap, tmp_path_factory.mktemp("serve"), free_port(), command="serve",
                      app_id=unique_name("hs-serve"), serving_scorer="bm25", **FAST).start()
    w.wait_ready(timeout=90)
    yield w
    w.stop()


def read_result(bootstrap: str, request_id: str, timeout: float = 60.0):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition("score-results", p) for p in consumer.partitions_for_topic("score-results")]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)

        def found():
            for msgs in consumer.poll(timeout_ms=500).values():
                for m in msgs:
                    ev = parse("score-results", m.value)
                    if ev.payload.request_id == request_id:
                        return ev
            return None
        return wait_for(found, timeout, f"score result {request_id}")
    finally:
        consumer.close()


def send_request(bootstrap: str, request_id: str, member_id: str, deadline_ms: int = 30_000,
                 sent: datetime | None = None) -> None:
    """A score request for 3 items, produced as any client would."""
    with EventProducer(bootstrap) as p:
        p.send(ScoreRequested(event_id=unique_name("e"),
                              event_time=sent or datetime.now(timezone.utc),
                              payload=ScoreRequest(request_id=request_id, member_id=member_id, k=3,
                                                   deadline_ms=deadline_ms)))


def test_a_score_request_gets_a_correct_result_back(serving_worker, kafka_bootstrap):
    uid = unique_name("x").replace("-", "")
    trade = f"glassblower{uid}"  # a word no other test's jobs have
    mid = unique_name("m")
    good, dismissed, other = (unique_name("j") for _ in range(3))
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.job_posted(unique_name("e"), 0, job_id=good, title=f"Senior {trade}", occupation=trade,
                            company_id=f"ca{uid}", skills=["Glass", "Kiln"]))
        p.send(f.job_posted(unique_name("e"), 0, job_id=dismissed, title=f"Lead {trade}", occupation=trade,
                            company_id=f"cb{uid}", skills=["Glass", "Kiln"]))
        p.send(f.job_posted(unique_name("e"), 0, job_id=other, title="Accountant", occupation="accountant",
                            company_id=f"cc{uid}", skills=["Excel"]))
        p.send(f.member_upserted(unique_name("e"), 0, member_id=mid, title=trade, occupation=trade,
                                 skills=["Glass", "Kiln"]))
        p.send(f.action(unique_name("e"), "view", 1, member_id=mid, job_id=dismissed))
        p.send(f.action(unique_name("e"), "dismiss", 1.1, member_id=mid, job_id=dismissed, reason="company"))
    serving_worker.wait_for(
        lambda: (serving_worker.member(mid) or {}).get("counts", {}).get("dismiss") == 1, 60, "the dismiss in state")
    serving_worker.wait_for(
        lambda: (s := serving_worker._get("/serving/")) and s["replica_lag"] == 0 and s["jobs_open"] >= 3,
        60, "the index replica to catch up")

    request_id = unique_name("r")
    send_request(kafka_bootstrap, request_id, mid)  # a generous deadline: a loaded machine must not expire it
    result = read_result(kafka_bootstrap, request_id).payload

    assert result.error is None and result.member_id == mid and result.model_id == "bm25"
    ids = [it.job_id for it in result.items]
    assert ids[0] == good  # the matching job first
    assert dismissed not in ids  # the member blocked its company with the dismiss
    assert any(trade in r for r in result.items[0].reasons)  # retrieval says why
    assert set(result.timings_ms) >= {"retrieve", "rank", "total"}


def test_a_request_with_a_maximal_event_id_gets_its_result(serving_worker, kafka_bootstrap):
    """Finding 6: the result's event id was `<request event id>:result`, over the 128-
    character bound for a request id near it: building the result raised, the scoring
    agent crashed and the request got no reply."""
    request_id = unique_name("r").ljust(ID_MAX, "r")
    event_id = unique_name("e").ljust(ID_MAX, "e")
    with EventProducer(kafka_bootstrap) as p:
        p.send(ScoreRequested(event_id=event_id, event_time=datetime.now(timezone.utc),
                              payload=ScoreRequest(request_id=request_id, member_id=unique_name("m"), k=3,
                                                   deadline_ms=30_000)))
    result = read_result(kafka_bootstrap, request_id)
    assert result.payload.status is ScoreStatus.OK and result.payload.error is None
    assert len(result.event_id) <= ID_MAX and result.event_id.endswith(":result")
    assert result.event_id.startswith(event_id[:64])  # still says which request it answers


def test_a_request_past_its_deadline_is_answered_expired_and_not_scored(serving_worker, kafka_bootstrap):
    """Finding 6: a request already past its deadline was scored and answered as if on time."""
    request_id = unique_name("r")
    sent = datetime.now(timezone.utc) - timedelta(seconds=5)
    send_request(kafka_bootstrap, request_id, unique_name("m"), deadline_ms=1000, sent=sent)
    result = read_result(kafka_bootstrap, request_id).payload
    assert result.status is ScoreStatus.EXPIRED
    assert result.items == [] and "rank" not in result.timings_ms  # never scored
    assert "deadline" in result.error


def test_a_result_leaves_the_worker_without_waiting_out_its_producers_linger(kafka_bootstrap, tmp_path):
    """The worker's producer lingers so that changelog writes share requests; a score
    result is sent at once (streams/send_now.py). With the linger at 120 s, a result
    still comes back well within it: a result that waited it out misses the read's
    60 s."""
    w = WorkerProcess(kafka_bootstrap, tmp_path, free_port(), command="serve", app_id=unique_name("hs-linger"),
                      serving_scorer="bm25", producer_linger=120.0, **FAST).start()
    try:
        w.wait_ready(timeout=90)
        request_id = unique_name("r")
        send_request(kafka_bootstrap, request_id, unique_name("m"))
        result = read_result(kafka_bootstrap, request_id, timeout=60.0).payload
        assert result.status is ScoreStatus.OK and result.error is None
    finally:
        w.crash()  # a clean stop would flush the producer, waiting out the linger
