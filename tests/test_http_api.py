"""The scoring service's HTTP API: end to end against the real broker (a `hirestream
serve` worker answering over HTTP and Kafka through one path, read with
`serving.client`), and `/v1/score` in process over a small LM."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.worker_process import WorkerProcess
from models.cpu import available_cpus
from serving.client import Client, HttpError
from streams.schemas import ScoreRequest, ScoreRequested, ScoreResult, ScoreStatus
from tests import factories as f
from tests.kafka_helpers import free_port, require_kcat, unique_name

TOKEN = "s3cret-" + unique_name("t")
FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)


def start_serving(kafka_bootstrap, tmp, token=None, **serving):
    http_port = free_port()
    settings = {**FAST, "serving_scorer": "bm25", "serving_http_port": http_port,
                **{f"serving_{k}": v for k, v in serving.items()}}
    if token:
        settings["token"] = token
    w = WorkerProcess(kafka_bootstrap, tmp, free_port(), command="serve", app_id=unique_name("hs-http"),
                      **settings).start()
    client = Client(kafka=kafka_bootstrap, http=f"http://127.0.0.1:{http_port}", token=token)
    last = {"readyz": "not answering yet"}

    def ready():
        try:
            status, body = client.get("/readyz")
        except (urllib.error.URLError, ConnectionError):  # not listening yet
            return False
        last["readyz"] = body
        return status == 200

    try:
        w.wait_ready(timeout=90)
        try:
            w.wait_for(ready, 180, "/readyz to say ready", interval=0.25)
        except TimeoutError as err:
            raise TimeoutError(f"/readyz said {last['readyz']}; {err}") from None
    except BaseException:
        client.close()
        w.stop()
        raise
    return w, client


@pytest.fixture(scope="module")
def serving(kafka_bootstrap, tmp_path_factory):
    w, client = start_serving(kafka_bootstrap, tmp_path_factory.mktemp("http"), token=TOKEN)
    yield w, client
    client.close()
    w.stop()


def ids(result: ScoreResult) -> list[str]:
    return [it.job_id for it in result.items]


def marketplace(client: Client, uid: str):
    """A member and four jobs only they match (unique words), BM25's order known:
    G1 (title, occupation, both skills) > G2 (one skill) > P1 (the other skill)."""
    mid = unique_name("m")
    jobs = {name: unique_name(name) for name in ("G1", "G2", "P1", "A1")}
    glass, kiln = f"Glass{uid}", f"Kiln{uid}"
    client.send(
        f.job_posted(unique_name("e"), 0, job_id=jobs["G1"], title=f"Senior glassblower{uid}",
                     occupation=f"glassblower{uid}", skills=[glass, kiln], company_id=f"c1{uid}"),
        f.job_posted(unique_name("e"), 0, job_id=jobs["G2"], title=f"Glass artist{uid}",
                     occupation=f"glass artist{uid}", skills=[glass], company_id=f"c2{uid}"),
        f.job_posted(unique_name("e"), 0, job_id=jobs["P1"], title=f"Kiln technician{uid}",
                     occupation=f"kiln technician{uid}", skills=[kiln], company_id=f"c3{uid}"),
        f.job_posted(unique_name("e"), 0, job_id=jobs["A1"], title=f"Kiln technician{uid} apprentice",
                     occupation=f"kiln technician{uid}", skills=[kiln], company_id=f"c4{uid}"),
        f.member_upserted(unique_name("e"), 0, member_id=mid, title=f"Glassblower{uid}",
                          occupation=f"glassblower{uid}", skills=[glass, kiln]),
    )
    return mid, jobs


def wait_ranked(w: WorkerProcess, client: Client, mid: str, job_ids, k: int = 10) -> ScoreResult:
    """Wait until the member's profile is in the worker's table and the replica holds
    the jobs (all four in one ranking); that ranking."""
    w.wait_for(lambda: (w.member(mid) or {}).get("profile"), 60, "the profile in state")
    return w.wait_for(lambda: (r := client.rank(mid, k=k, timeout=10)) and set(job_ids) <= set(ids(r)) and r,
                      60, "the jobs in the replica")


@pytest.mark.kafka
def test_an_http_rank_returns_ranked_jobs_and_kafka_and_kcat_get_the_same(serving, kafka_bootstrap):
    w, client = serving
    uid = unique_name("u").replace("-", "")
    mid, jobs = marketplace(client, uid)
    result = wait_ranked(w, client, mid, jobs.values())

    assert result.status is ScoreStatus.OK and result.error is None and result.model_id == "bm25"
    assert ids(result)[:2] == [jobs["G1"], jobs["G2"]]
    assert ids(result).index(jobs["G2"]) < ids(result).index(jobs["P1"])
    assert any(f"glassblower{uid}" in reason for reason in result.items[0].reasons)
    assert set(result.timings_ms) >= {"state", "retrieve", "queue", "rank", "total"}
    status, _ = client.post("/v1/rank", {"member_id": mid, "k": 3})
    assert status == 200

    over_kafka = client.rank(mid, k=10, timeout=30, via="kafka")  # the same path, through score-requests
    assert over_kafka.status is ScoreStatus.OK and ids(over_kafka) == ids(result)

    # any Kafka client can ask: a request produced by kcat (librdkafka), read back with the client
    request_id = unique_name("r")
    client.follow(mid)  # read the member's results from here on, before anyone asks
    envelope = ScoreRequested(event_id=unique_name("e"), event_time=datetime.now(timezone.utc),
                              payload=ScoreRequest(request_id=request_id, member_id=mid, k=2, deadline_ms=30_000))
    subprocess.run([require_kcat(), "-P", "-b", kafka_bootstrap, "-t", "score-requests", "-K", "|",
                    "-X", "topic.partitioner=murmur2_random"],
                   input=f"{mid}|{envelope.to_json().decode()}\n".encode(), check=True, timeout=30)
    by_kcat = client.result(request_id, mid, timeout=30)
    assert by_kcat.status is ScoreStatus.OK and ids(by_kcat) == ids(result)[:2]


@pytest.mark.kafka
def test_a_ranker_reading_jobs_alone_is_ready_once_warm_and_reranks_from_its_cache(kafka_bootstrap, tmp_path):
    """A jobs-alone checkpoint (`models/job_states.py`) on a real `serve` worker started
    after the jobs were posted: /readyz waits until every open job's states are computed,
    so the member's rankings compute nothing (misses stay, hits grow by its candidates).
    Started with the model owning the cores: torch's thread counts say so."""
    import torch

    from models.ranker import Ranker, StudentConfig

    ranker = Ranker.student(StudentConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=1), teacher_embeddings=False)
    with torch.no_grad():  # scores that differ between jobs, so the order is the model's
        ranker.model.get_input_embeddings().weight.mul_(20)
    ranker.read_jobs_alone()
    ranker.save(tmp_path / "ckpt")
    with Client(kafka=kafka_bootstrap) as producer:
        mid, jobs = marketplace(producer, unique_name("u"))
    # Only 8 candidates, all returned: an untrained ranker would push this member's jobs out
    # of a top 50 among the many jobs earlier tests posted; retrieval puts them first.
    w, client = start_serving(kafka_bootstrap, tmp_path / "w", scorer=f"ranker:{tmp_path / 'ckpt'}", retrieve_k=8,
                              model_owns_cores=True)
    try:
        status, ready = client.get("/readyz")
        assert status == 200 and json.loads(ready)["job_states_warm"] is True, ready
        warmed = w._get("/serving/")
        assert warmed["job_states"]["computed_ahead"] >= warmed["jobs_open"] >= len(jobs), warmed
        first = wait_ranked(w, client, mid, jobs.values(), k=8)
        assert first.status == ScoreStatus.OK and first.model_id.startswith("ranker:")
        before = w._get("/serving/")["job_states"]
        again = client.rank(mid, k=8, timeout=10)
        after = w._get("/serving/")["job_states"]
        assert ids(again) == ids(first)
        assert before["misses"] == after["misses"] == 0, (warmed, before, after)  # nothing computed in a request
        assert after["hits"] >= before["hits"] + len(jobs), (before, after)
        # HIRESTREAM_SERVING_MODEL_OWNS_CORES: the model thread alone runs torch on every
        # CPU, the event loop's thread (which loaded the model) on one.
        threads = w._get("/serving/")["torch_threads"]
        assert threads == {"model_thread": available_cpus(), "this_thread": 1}, threads
    finally:
        client.close()
        w.stop()


def test_a_job_closed_a_moment_earlier_is_not_ranked(serving):
    w, client = serving
    uid = unique_name("u").replace("-", "")
    mid, jobs = marketplace(client, uid)
    assert jobs["G1"] in ids(wait_ranked(w, client, mid, jobs.values()))
    open_before = w._get("/serving/")["jobs_open"]

    client.send(f.job_closed(unique_name("e"), jobs["G1"], 1))
    w.wait_for(lambda: w._get("/serving/")["jobs_open"] == open_before - 1, 30, "the close in the replica")
    after = client.rank(mid, k=10, timeout=10)
    assert after.status is ScoreStatus.OK
    assert jobs["G1"] not in ids(after) and jobs["G2"] in ids(after)


@pytest.mark.kafka
def test_a_members_fresh_apply_changes_their_next_result(serving):
    """Applying to a kiln technician job adds its words to what the member says about
    themselves: the other kiln technician job (P1) overtakes the glass artist job (G2)."""
    w, client = serving
    uid = unique_name("u").replace("-", "")
    mid, jobs = marketplace(client, uid)
    before = wait_ranked(w, client, mid, jobs.values())
    assert ids(before).index(jobs["G2"]) < ids(before).index(jobs["P1"])
    w.wait_for(lambda: w.job(jobs["A1"]), 30, "the applied job in the worker's catalog")

    client.send(f.action(unique_name("e"), "apply", 1, member_id=mid, job_id=jobs["A1"]))
    w.wait_for(lambda: (w.member(mid) or {}).get("counts", {}).get("apply") == 1, 30, "the apply in state")
    after = client.rank(mid, k=10, timeout=10)
    assert after.status is ScoreStatus.OK
    assert ids(after).index(jobs["P1"]) < ids(after).index(jobs["G2"])
    score = {it.job_id: it.score for it in after.items}
    assert score[jobs["P1"]] > {it.job_id: it.score for it in before.items}[jobs["P1"]]


@pytest.mark.kafka
def test_every_endpoint_but_health_readiness_and_docs_needs_the_token(serving):
    w, client = serving
    base = client.http
    anonymous = Client(http=base)
    wrong = Client(http=base, token="wrong")
    for c in (anonymous, wrong):
        with pytest.raises(HttpError) as err:
            c.rank("m1", timeout=5)
        assert err.value.status == 401
        assert c.post("/v1/score", {"query": "x", "items": ["y"], "label_token_ids": [1]})[0] == 401
        assert c.get("/metrics")[0] == 401
        assert c.get("/nope")[0] == 401
    assert anonymous.get("/healthz") == (200, '{"status":"ok"}')
    assert anonymous.get("/readyz")[0] == 200
    assert anonymous.get("/openapi.json")[0] == 200 and "/v1/rank" in anonymous.get("/openapi.json")[1]
    assert anonymous.get("/docs")[0] == 200
    assert client.get("/metrics")[0] == 200
    # the scorer is BM25, not a language model: /v1/score says so
    status, body = client.post("/v1/score", {"query": "x", "items": ["y"], "label_token_ids": [1]})
    assert status == 501 and "not a language model" in body


@pytest.mark.kafka
def test_metrics_parse_as_prometheus_text(serving):
    w, client = serving
    client.rank(unique_name("m"), timeout=10, via="http")
    status, text = client.get("/metrics")
    assert status == 200
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(text) for s in family.samples}
    assert got[("hirestream_model_info", (("model_id", "bm25"),))] == 1
    assert got[("hirestream_score_requests_total", (("status", "ok"), ("via", "http")))] >= 1
    assert got[("hirestream_score_requests_total", (("status", "ok"), ("via", "kafka")))] >= 1
    assert got[("hirestream_score_stage_seconds_count", (("stage", "total"),))] >= 2
    assert got[("hirestream_scoring_queue_depth", ())] == 0
    assert got[("hirestream_ready", ())] == 1
    assert got[("hirestream_consumer_lag_messages", (("consumer", "index_replica"),))] >= 0
    assert got[("hirestream_consumer_lag_messages", (("consumer", "score_requests"),))] >= 0
    assert got[("hirestream_gc_pause_seconds_count", (("generation", "2"),))] >= 1  # the freeze's, at least


@pytest.mark.kafka
def test_what_the_worker_loaded_is_frozen_out_of_the_collectors_walks_before_it_is_ready(serving):
    """A full collection walks every object alive with the GIL held (~0.4 s in a serve
    worker with a marketplace loaded): the worker freezes what it holds before /readyz
    says ready, so later full collections walk only what came after."""
    w, client = serving
    status, ready = client.get("/readyz")
    assert status == 200 and json.loads(ready)["long_lived_objects_frozen"] is True, ready
    page = w._get("/serving/")["gc"]
    assert page["frozen_objects"] > 50_000, page  # the loaded modules' and the index's objects at least
    assert page["before_freeze"]["gen2"]["count"] >= 1, page  # its last full collection before freezing


@pytest.fixture(scope="module")
def overloaded(kafka_bootstrap, tmp_path_factory):
    """A worker whose queue holds two requests, the second degraded, and whose batch
    window (3 s) keeps them waiting while more arrive. HTTP only: Kafka requests other
    tests left on the shared broker must not take its two places."""
    w, client = start_serving(kafka_bootstrap, tmp_path_factory.mktemp("overload"), kafka_requests="false",
                              batch_window_ms=3000, max_batch=16, queue_max=2, degrade_at=1, degraded_k=1)
    yield w, client
    client.close()
    w.stop()


@pytest.mark.kafka
def test_overload_sheds_with_the_stated_status(overloaded):
    w, client = overloaded
    uid = unique_name("u").replace("-", "")
    mid, jobs = marketplace(client, uid)
    wait_ranked(w, client, mid, jobs.values(), k=5)  # candidates to rank: each request waits for the model
    body = {"member_id": mid, "k": 5, "deadline_ms": 30_000}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/rank", body, timeout=60), range(6)))
    by_status: dict[str, list[int]] = {}
    for http_status, text in answers:
        result = ScoreResult.model_validate_json(text)
        by_status.setdefault(result.status.value, []).append(http_status)
        if result.status is ScoreStatus.SHED:
            assert result.items == [] and "queue_max 2" in result.error
        if result.status is ScoreStatus.PARTIAL:
            assert "degraded under load" in result.error and result.timings_ms["candidates"] <= 1
    assert by_status == {"ok": [200], "partial": [200], "shed": [503] * 4}, "\n".join(t for _, t in answers)
    status, text = client.get("/metrics")
    shed = [s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == "hirestream_score_requests_total" and s.labels == {"via": "http", "status": "shed"}]
    assert shed == [4]
    assert w._get("/serving/")["scoring_queue_depth"] == 0


def test_v1_score_has_sglangs_shape_and_reads_the_label_probabilities():
    """In process (no broker): the API over a tiny LM ranker, through httpx's ASGI transport."""
    import asyncio

    import httpx
    import numpy as np

    from serving.online.http_api import create_app
    from serving.online.scoring import ScoringService
    from tests.scoring_helpers import engine, tiny_lm_scorer

    scorer = tiny_lm_scorer()
    ranker = scorer.ranker
    service = ScoringService(engine(scorer))
    api = create_app(service, token="t0k")
    body = {"query": "## Member Profile\nGlassblower\n\n", "items": ["## Question\nGlassblower", "## Question\nNurse"],
            "label_token_ids": [ranker.yes_id, ranker.no_id], "apply_softmax": True}

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as http:
            denied = await http.post("/v1/score", json=body)
            auth = {"Authorization": "Bearer t0k"}
            ok = await http.post("/v1/score", json=body, headers=auth)
            bad = await http.post("/v1/score", json={**body, "label_token_ids": [10**9]}, headers=auth)
            too_many = await http.post("/v1/score", json={**body, "items": ["x"] * 501}, headers=auth)
            too_big = await http.post("/v1/score", content=b"x" * (9 * 1024 * 1024), headers=auth)
            return denied, ok, bad, too_many, too_big

    denied, ok, bad, too_many, too_big = asyncio.run(main())
    assert denied.status_code == 401
    assert ok.status_code == 200 and ok.json()["object"] == "scoring" and ok.json()["model"] == "tiny"
    want = ranker.label_probabilities(body["query"], body["items"], body["label_token_ids"], apply_softmax=True)
    np.testing.assert_allclose(np.asarray(ok.json()["scores"]), want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ok.json()["scores"]).sum(axis=1), 1.0, atol=1e-5)
    assert bad.status_code == 422 and "label_token_ids" in bad.json()["error"]
    assert too_many.status_code == 422
    assert too_big.status_code == 413  # refused before it is read
