"""A secured cluster, as a managed Kafka is one: the project's own broker with a SASL_SSL
listener (a CA and a broker certificate made here with openssl; users who log in with
SCRAM-SHA-512 or PLAIN). Through it a producer (`hirestream produce`), a worker and the
scoring service (`hirestream serve`: Kafka request/reply and the HTTP API, whose index
replica follows the secured topics) do their work, and kcat reads a topic with the
properties `hirestream settings kafka-properties` writes. A wrong password is refused
with a message that says so, and the password shows in no output or log."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra import broker
from infra.worker_process import WorkerProcess
from serving.client import Client
from streams.schemas import serialize
from streams.settings import REPO_ROOT, get_settings
from tests import factories as f
from tests.kafka_helpers import USER_CLUSTER, free_port, require_kcat, unique_name
from tests.tls_helpers import make_certificates

pytestmark = pytest.mark.kafka

USER = "alice"
FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)


@dataclass(frozen=True)
class SecuredCluster:
    bootstrap: str
    password: str
    cfg: broker.BrokerConfig


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    """A SASL_SSL broker of its own, and this process's (and its children's) settings
    pointing every client at it as alice over SCRAM-SHA-512."""
    if USER_CLUSTER:
        pytest.skip("starts a secured broker of its own; with KAFKA_BOOTSTRAP named, nothing "
                    "may start brokers beside that cluster")
    root = tmp_path_factory.mktemp("secured")
    certs = make_certificates(root / "tls")
    password = secrets.token_urlsafe(18)
    port, controller_port = broker.free_ports(2)
    cfg = broker.BrokerConfig(
        data_dir=root / "kafka", port=port, controller_port=controller_port, default_partitions=3,
        die_with_parent=True,
        secured=broker.SaslSslListener(keystore=certs.keystore, ca=certs.ca, users=((USER, password),)))
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"KAFKA_BOOTSTRAP": cfg.bootstrap, "HIRESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                            "HIRESTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "HIRESTREAM_KAFKA_USERNAME": USER,
                            "HIRESTREAM_KAFKA_PASSWORD": password, "HIRESTREAM_KAFKA_CA_FILE": str(certs.ca),
                            "HIRESTREAM_MEMBER_PARTITIONS": "3"}.items():
            env.setenv(name, value)
        get_settings.cache_clear()
        try:
            broker.start(cfg, broker.fetch_jars(), timeout=120)  # its readiness probe logs in as alice
            broker.create_topics(cfg.bootstrap, member_partitions=3)
            yield SecuredCluster(cfg.bootstrap, password, cfg)
        finally:
            broker.stop(cfg)
            get_settings.cache_clear()


def hirestream(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "infra.cli", *args], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def finished(command: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    out, err = command.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)


@dataclass(frozen=True)
class WrongPassword:
    password: str
    produce: subprocess.Popen
    worker: subprocess.Popen


@pytest.fixture(scope="module")
def wrong_password(secured, tmp_path_factory) -> Iterator[WrongPassword]:
    """`hirestream produce` and `hirestream worker` as alice with a wrong password, started
    early: kafka-python retries a refused login for its 30 s bootstrap timeout, which then
    overlaps the other test's work."""
    events = tmp_path_factory.mktemp("refused") / "events.jsonl"
    events.write_bytes(serialize(f.member_upserted(unique_name("e"), 0, member_id=unique_name("m"))) + b"\n")
    wrong = secrets.token_urlsafe(12)
    produce = hirestream("produce", "--file", str(events), HIRESTREAM_KAFKA_PASSWORD=wrong)
    worker = hirestream("worker", HIRESTREAM_KAFKA_PASSWORD=wrong, HIRESTREAM_APP_ID=unique_name("hs-refused"),
                        HIRESTREAM_DATA_DIR=str(tmp_path_factory.mktemp("refused-worker")))
    yield WrongPassword(wrong, produce, worker)
    for command in (produce, worker):
        command.kill()
        command.communicate()


def test_producer_worker_scoring_and_kcat_work_through_the_secured_broker(secured, wrong_password, tmp_path):
    uid = unique_name("x").replace("-", "")
    trade = f"lockpicker{uid}"  # a word no other job has
    mid, good, other = unique_name("m"), unique_name("j"), unique_name("j")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(serialize(e) for e in [
        f.job_posted(unique_name("e"), 0, job_id=good, title=f"Senior {trade}", occupation=trade,
                     company_id=f"ca{uid}", skills=["Locks", "Safes"]),
        f.job_posted(unique_name("e"), 0, job_id=other, title="Accountant", occupation="accountant",
                     company_id=f"cb{uid}", skills=["Excel"]),
        f.member_upserted(unique_name("e"), 0, member_id=mid, title=trade, occupation=trade,
                          skills=["Locks", "Safes"]),
        f.action(unique_name("e"), "view", 1, member_id=mid, job_id=other),
    ]) + b"\n")

    produced = finished(hirestream("produce", "--file", str(events)))
    assert produced.returncode == 0, produced.stderr
    assert "sent 4 events" in produced.stdout

    worker = WorkerProcess(secured.bootstrap, tmp_path / "serve", free_port(), command="serve",
                           app_id=unique_name("hs-secured"), serving_scorer="bm25", **FAST).start()
    try:
        worker.wait_ready(timeout=90)
        # The profile and the view come on two topics, read side by side: wait for both.
        state = worker.wait_for(lambda: (s := worker.member(mid)) and s["counts"].get("view") == 1
                                and s.get("profile") and s, 60, "the member's profile and view in the worker's table")
        assert state["profile"]["occupation"] == trade
        worker.wait_for(lambda: (s := worker._get("/serving/")) and s["replica_lag"] == 0 and s["jobs_open"] >= 2,
                        60, "the scoring service's index replica to follow the secured topics")

        with Client(kafka=secured.bootstrap) as over_kafka:  # score-requests -> score-results
            by_kafka = over_kafka.rank(mid, k=2, timeout=30)
        by_http = Client(http=f"http://127.0.0.1:{worker.settings['serving_http_port']}").rank(mid, k=2, timeout=30)
    finally:
        worker.stop()
    for result in (by_kafka, by_http):
        assert result.error is None and [it.job_id for it in result.items][0] == good

    # kcat, with the documented properties file, here logging in over PLAIN.
    properties = tmp_path / "kcat.properties"
    written = finished(hirestream("settings", "kafka-properties", "--out", str(properties),
                                  HIRESTREAM_KAFKA_SASL_MECHANISM="PLAIN"))
    assert written.returncode == 0, written.stderr
    assert properties.stat().st_mode & 0o077 == 0  # it holds the password: the owner's alone
    read = subprocess.run([require_kcat(), "-F", str(properties), "-b", secured.bootstrap, "-C", "-t", "members",
                           "-e", "-q", "-f", "%k\n"], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    assert mid in read.stdout.split()

    said = [produced.stdout, produced.stderr, written.stdout, written.stderr, read.stderr, worker.log_tail(10**7),
            secured.cfg.server_log.read_text(), repr(get_settings()), str(get_settings().model_dump())]
    assert not [text for text in said if secured.password in text]


@pytest.mark.parametrize("command", ["produce", "worker"])
def test_a_wrong_password_is_refused_with_a_clear_error(secured, wrong_password, command):
    refused = finished(getattr(wrong_password, command))
    assert refused.returncode != 0
    assert f"Kafka at {secured.bootstrap} refused user 'alice' (SCRAM-SHA-512 over SASL_SSL)" in refused.stderr
    assert "HIRESTREAM_KAFKA_PASSWORD" in refused.stderr
    # the broker's reason, or (kafka-python saw only the close: often on a busy machine) what it means
    assert "Authentication failed" in refused.stderr or "closed all" in refused.stderr
    assert "Traceback" not in refused.stderr
    said = refused.stdout + refused.stderr
    assert wrong_password.password not in said and secured.password not in said
