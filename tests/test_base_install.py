"""The base install (producers and clients) on its own: a fresh venv built from PyPI with
constraints.txt and no extra, as another team would install hirestream to feed it.

In that venv (its own processes, run outside this checkout so only the installed
package is imported), events are built with the schemas, produced to the real broker
with the Python client, checked by `hirestream validate`, and a ranking is asked for
over HTTP from a scoring API this test serves from the main venv over those same
events as read back from Kafka. Neither process imports torch, faust or numpy. The CLI
starts, and a command of another role says which extra to install."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra import role_install
from infra.extras import EXTRA_OF_MODULE
from infra.waiting import wait_for
from streams.schemas import parse
from streams.topics import JOBS, MEMBERS
from tests.kafka_helpers import free_port, java_partition, unique_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # builds a venv from PyPI (30-70 s here)

# Runs in the base venv: builds a member and three jobs only they match (unique words),
# sends them with the client, writes them as a log; prints the extras' modules it loaded.
PRODUCE = """
import json, sys
from datetime import datetime, timezone
from serving.client import Client
from streams.schemas import Job, JobPosted, MemberProfile, MemberUpserted, Seniority, serialize

bootstrap, uid, log = sys.argv[1:4]
now = datetime.now(timezone.utc)
def job(n, title, skills):
    return JobPosted(event_id=f"e-{uid}-{n}", event_time=now, payload=Job(
        job_id=f"j-{uid}-{n}", company_id=f"c-{uid}", company_name="Acme", title=title, occupation=title.lower(),
        skills=skills, location="Seattle", seniority=Seniority.MID, promoted=False, description=title))
events = [
    job(1, f"Glassblower{uid}", [f"Glass{uid}", f"Kiln{uid}"]),
    job(2, f"Glass artist{uid}", [f"Glass{uid}"]),
    job(3, f"Nurse{uid}", [f"Triage{uid}"]),
    MemberUpserted(event_id=f"e-{uid}-m", event_time=now, payload=MemberProfile(
        member_id=f"m-{uid}", title=f"Glassblower{uid}", occupation=f"glassblower{uid}",
        skills=[f"Glass{uid}", f"Kiln{uid}"], location="Seattle", seniority=Seniority.MID,
        years_experience=5, about="I blow glass.")),
]
with Client(kafka=bootstrap) as client:
    client.send(*events)
with open(log, "wb") as f:
    f.writelines(serialize(e) + b"\\n" for e in events)
print(json.dumps({"modules": sorted({m.partition(".")[0] for m in sys.modules} & set(json.loads(sys.argv[4])))}))
"""

# Runs in the base venv: one ranking over HTTP; prints it and the extras' modules loaded.
RANK = """
import json, sys
from serving.client import Client

url, member_id = sys.argv[1:3]
result = Client(http=url).rank(member_id, k=3, timeout=30)
print(json.dumps({"result": result.model_dump(mode="json"),
                  "modules": sorted({m.partition(".")[0] for m in sys.modules} & set(json.loads(sys.argv[3])))}))
"""


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> role_install.RoleVenv:
    return role_install.build(tmp_path_factory.mktemp("base-install") / "venv", (), python=sys.executable)


def run_in(venv: role_install.RoleVenv, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


def read_back(bootstrap: str, events: dict[str, tuple[str, str]]) -> dict[str, bytes]:
    """event_id -> the message's value, read from each event's partition (topic, key)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = {}
        for event_id, (topic, key) in events.items():
            tps[event_id] = TopicPartition(topic, java_partition(key.encode(), len(consumer.partitions_for_topic(topic))))
        consumer.assign(sorted(set(tps.values())))
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(list(set(tps.values())))
        found: dict[str, bytes] = {}

        def read_to_end() -> bool:
            for messages in consumer.poll(timeout_ms=500).values():
                for m in messages:
                    event_id = json.loads(m.value).get("event_id")
                    if event_id in events:
                        found[event_id] = m.value
            return all(consumer.position(tp) >= end for tp, end in ends.items())

        wait_for(read_to_end, 60, "the partitions read to their end")
        return found
    finally:
        consumer.close()


class ScoringApi:
    """The real HTTP API (serving.online.http_api) over an in-process BM25 engine, under
    uvicorn in a thread of this process."""

    def __init__(self, events, member_id: str):
        import uvicorn

        from serving.online.engine import MatchingEngine
        from serving.online.http_api import create_app
        from serving.online.scorer import BM25Scorer
        from serving.online.scoring import ScoringService

        engine = MatchingEngine(BM25Scorer())
        engine.apply_all(events)
        engine.retrieve(engine.member(member_id))  # the scan's first call compiles (numba): not in a deadline
        self.service = ScoringService(engine)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.service), host="127.0.0.1", port=self.port,
                                                    lifespan="off", log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn to listen")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.service.close()


@pytest.mark.kafka
def test_the_base_install_produces_valid_events_and_ranks_over_http_without_torch(base_venv, kafka_bootstrap,
                                                                                   tmp_path):
    uid = unique_name("b").replace("-", "")
    log = tmp_path / "events.jsonl"
    extras = json.dumps(sorted(EXTRA_OF_MODULE))
    produced = run_in(base_venv, tmp_path, base_venv.python, "-c", PRODUCE, kafka_bootstrap, uid, log, extras)
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout)["modules"] == []

    checked = run_in(base_venv, tmp_path, base_venv.bin("hirestream"), "validate", log)
    assert checked.returncode == 0 and "4 valid events, 0 rejected lines" in checked.stdout, checked.stdout

    where = {f"e-{uid}-{n}": (JOBS.name, f"j-{uid}-{n}") for n in (1, 2, 3)} | {f"e-{uid}-m": (MEMBERS.name, f"m-{uid}")}
    values = read_back(kafka_bootstrap, where)
    assert sorted(values) == sorted(where), "an event the client sent is not on its topic"
    events = [parse(where[event_id][0], value) for event_id, value in values.items()]  # valid, or this raises

    with ScoringApi(events, f"m-{uid}") as url:
        ranked = run_in(base_venv, tmp_path, base_venv.python, "-c", RANK, url, f"m-{uid}", extras)
    assert ranked.returncode == 0, ranked.stderr
    answer = json.loads(ranked.stdout)
    assert answer["modules"] == [], f"the base client imported {answer['modules']}"
    result = answer["result"]
    assert result["status"] == "ok", result
    # BM25 over the member's words: the job with both skills and the title first, the
    # nurse job (no word in common) last or not at all.
    job_ids = [item["job_id"] for item in result["items"]]
    assert job_ids[:2] == [f"j-{uid}-1", f"j-{uid}-2"], job_ids


def test_the_base_install_has_no_extra_and_its_cli_starts(base_venv, tmp_path):
    installed = run_in(base_venv, tmp_path, base_venv.python, "-c",
                       "import importlib.util, json, sys; "
                       "print(json.dumps([m for m in json.loads(sys.argv[1]) if importlib.util.find_spec(m)]))",
                       json.dumps(sorted(EXTRA_OF_MODULE)))
    assert installed.returncode == 0 and json.loads(installed.stdout) == [], installed.stdout + installed.stderr
    helped = run_in(base_venv, tmp_path, base_venv.bin("hirestream"), "--help")
    assert helped.returncode == 0 and "produce" in helped.stdout, helped.stderr
    exported = run_in(base_venv, tmp_path, base_venv.bin("hirestream"), "schema", "export", tmp_path / "schemas")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "schemas" / "job.posted.schema.json").is_file()


@pytest.mark.parametrize("command, extra", [("worker", "worker"), ("serve", "serving"), ("train ranker", "all")])
def test_a_command_of_another_role_says_which_extra_to_install(base_venv, tmp_path, command, extra):
    done = run_in(base_venv, tmp_path, base_venv.bin("hirestream"), *command.split())
    assert done.returncode == 1
    assert f"pip install 'hirestream[{extra}]'" in done.stderr and "Traceback" not in done.stderr, done.stderr
