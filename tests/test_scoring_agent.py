"""The scoring agent against the real broker: jobs, a member and actions in, a
correct score-result out of Kafka."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra.waiting import wait_for
from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from streams.schemas import ScoreRequest, ScoreRequested, parse
from streams.settings import REPO_ROOT
from tests import factories as f
from tests.kafka_helpers import free_port, unique_name

pytestmark = pytest.mark.kafka

FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)


class ServingWorker(WorkerProcess):
    """The same child-process handle, running `hirestream serve` (worker + scoring agent)."""

    def start(self) -> "ServingWorker":
        env = dict(os.environ)
        env.update({"KAFKA_BOOTSTRAP": self.bootstrap, "HIRESTREAM_DATA_DIR": str(self.data_dir),
                    "HIRESTREAM_WEB_PORT": str(self.web_port), "HIRESTREAM_SERVING_SCORER": "bm25"})
        env.update({f"HIRESTREAM_{k.upper()}": str(v) for k, v in self.settings.items()})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "infra.cli", "serve", "--loglevel", "warning"],
                                         cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self


@pytest.fixture(scope="module")
def serving_worker(kafka_bootstrap, tmp_path_factory):
    w = ServingWorker(kafka_bootstrap, tmp_path_factory.mktemp("serve"), free_port(),
                      app_id=unique_name("hs-serve"), **FAST).start()
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
    with EventProducer(kafka_bootstrap) as p:
        p.send(ScoreRequested(event_id=unique_name("e"), event_time=datetime.now(timezone.utc),
                              payload=ScoreRequest(request_id=request_id, member_id=mid, k=3)))
    result = read_result(kafka_bootstrap, request_id).payload

    assert result.error is None and result.member_id == mid and result.model_id == "bm25"
    ids = [it.job_id for it in result.items]
    assert ids[0] == good  # the matching job first
    assert dismissed not in ids  # the member blocked its company with the dismiss
    assert any(trade in r for r in result.items[0].reasons)  # retrieval says why
    assert set(result.timings_ms) >= {"retrieve", "rank", "total"}
