"""The worker's web server is safe by default (finding 8), checked over HTTP against a
real serving worker: loopback only, a token on everything but the health check,
faust's table dump and router off, no GET that changes state."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from pydantic import ValidationError

from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from streams.settings import Settings
from tests import factories as f
from tests.kafka_helpers import free_port, unique_name

TOKEN = "s3cret-" + unique_name("t")
FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)


def http(port: int, path: str, method: str = "GET", token: str | None = None, host: str = "127.0.0.1"):
    """(status, parsed JSON body or None) of one request."""
    request = urllib.request.Request(f"http://{host}:{port}{path}", method=method,
                                     data=b"" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except ValueError:
            return err.code, None


@pytest.fixture(scope="module")
def guarded_worker(kafka_bootstrap, tmp_path_factory):
    w = WorkerProcess(kafka_bootstrap, tmp_path_factory.mktemp("web"), free_port(), command="serve",
                      app_id=unique_name("hs-web"), token=TOKEN, **FAST).start()
    w.wait_ready(timeout=90)  # sends the token (WorkerProcess.token)
    yield w
    w.stop()


def test_a_reachable_bind_address_needs_a_token():
    with pytest.raises(ValidationError, match="HIRESTREAM_TOKEN"):
        Settings(web_bind="0.0.0.0", token=None)
    with pytest.raises(ValidationError, match="HIRESTREAM_TOKEN"):
        Settings(web_bind="10.1.2.3", token="  ")  # an empty token is no token
    assert Settings(web_bind="0.0.0.0", token="t").web_bind == "0.0.0.0"
    assert Settings().web_bind == "127.0.0.1"


@pytest.mark.kafka
def test_every_endpoint_but_health_needs_the_token(guarded_worker, kafka_bootstrap):
    mid = unique_name("m")
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.member_upserted(unique_name("e"), member_id=mid, about="private words"))
    guarded_worker.wait_for(lambda: guarded_worker.member(mid), 60, "the profile")
    port = guarded_worker.web_port

    paths = ["/", "/stats/", f"/members/{mid}/", "/jobs/j1/", "/debug/tasks/", "/serving/",
             "/table/", f"/table/member-state/{mid}/", "/router/", "/graph/", "/assignment/", "/nope/"]
    for path in paths:
        assert http(port, path)[0] == 401, path
        assert http(port, path, token="wrong")[0] == 401, path
        assert http(port, path, method="POST")[0] == 401, path
    assert http(port, "/health/") == (200, {"status": "ok"})
    assert http(port, f"/members/{mid}/", token=TOKEN)[1]["profile"]["about"] == "private words"
    assert http(port, "/debug/tasks/", token=TOKEN)[0] == 200


@pytest.mark.kafka
def test_faust_table_dump_and_router_are_off(guarded_worker, kafka_bootstrap):
    mid = unique_name("m")
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.member_upserted(unique_name("e"), member_id=mid))
    guarded_worker.wait_for(lambda: guarded_worker.member(mid), 60, "the profile")
    port = guarded_worker.web_port
    for path in ["/table/", f"/table/member-state/{mid}/", "/table/member-state/", "/router/", "/graph/"]:
        status, body = http(port, path, token=TOKEN)
        assert status == 404, (path, status, body)


@pytest.mark.kafka
def test_no_get_changes_state(guarded_worker, kafka_bootstrap):
    port = guarded_worker.web_port
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.member_upserted(unique_name("e"), member_id=unique_name("m")))
    guarded_worker.wait_for(lambda: (guarded_worker.stats() or {}).get("processed_total", 0) > 0, 60, "an event")
    assert http(port, "/stats/reset/", token=TOKEN)[0] == 405  # GET: method not allowed
    assert guarded_worker.stats()["processed_total"] > 0  # untouched
    status, after = http(port, "/stats/reset/", method="POST", token=TOKEN)
    assert status == 200 and after["processed_total"] == 0


def _non_loopback_address() -> str | None:
    """An address of this machine other than loopback (a UDP 'connect' sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, only used to pick an interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.kafka
def test_the_web_server_binds_loopback_only(guarded_worker):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):  # connection refused: nothing listens there
        socket.create_connection((address, guarded_worker.web_port), timeout=3).close()
    socket.create_connection(("127.0.0.1", guarded_worker.web_port), timeout=3).close()
