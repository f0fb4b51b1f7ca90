"""The stream worker against the real broker: events in, RocksDB tables out.

Every test uses member ids of its own, so the tests share one broker and one worker
without seeing each other's members.
"""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from infra.waiting import wait_for
from infra.worker_process import WorkerProcess
from streams.delivery import EXIT_FATAL
from streams.producer import EventProducer, make_producer
from streams.schemas import serialize
from streams.settings import get_settings
from tests import factories as f
from tests.kafka_helpers import free_port, java_partition, require_kcat, unique_name
from tests.stream_helpers import assert_exact_view_counts, member_with, produce_views, views_handled

pytestmark = pytest.mark.kafka

FAST = dict(broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5)
PARTITIONS = get_settings().member_partitions  # of every topic on the session's broker (tests/conftest.py)


def start_worker(bootstrap: str, data_dir: Path, app_id: str, loglevel: str = "warning",
                 **settings: object) -> WorkerProcess:
    worker = WorkerProcess(bootstrap, data_dir, free_port(), loglevel=loglevel, app_id=app_id,
                           **{**FAST, **settings}).start()
    worker.wait_ready(timeout=90)
    return worker


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory):
    w = start_worker(kafka_bootstrap, tmp_path_factory.mktemp("worker"), unique_name("hs-test"))
    yield w
    w.stop()


def test_kafka_python_events_reach_the_tables(worker, kafka_bootstrap):
    mid, jid = unique_name("m"), unique_name("j")
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.job_posted(unique_name("e"), job_id=jid))
        worker.wait_for(lambda: worker.job(jid), 60, "job in the catalog")
        p.send(f.member_upserted(unique_name("e"), member_id=mid))
        p.send(f.action(unique_name("e"), "apply", 1, member_id=mid, job_id=jid))
        p.send(f.hire(unique_name("e"), 30, member_id=mid, job_id=jid))
    state = member_with(worker, mid, lambda v: v["counts"].get("hired") == 1 and v["profile"], "history")
    assert state["counts"] == {"apply": 1, "hired": 1}
    assert state["history"][1]["job"]["title"] == "Senior Data Engineer"  # described from the catalog
    assert "Applied: Senior Data Engineer, Acme, Seattle (1d ago)" \
        in state["verbalized_history"]
    assert "Hired: Senior Data Engineer, Acme, Seattle (today)" in state["verbalized_history"]

    with EventProducer(kafka_bootstrap) as p:
        p.send(f.job_closed(unique_name("e"), jid, hours=40))
    closed = worker.wait_for(lambda: (j := worker.job(jid)) and not j["open"] and j, 60, "job closed")
    assert closed["job"]["title"] == "Senior Data Engineer"


def test_kcat_events_reach_the_tables(worker, kafka_bootstrap):
    """An independent client (librdkafka) produces plain Kafka messages the worker reads.

    kcat must use the Java client's murmur2 partitioner: librdkafka's default (CRC32)
    would put a member's events on a different partition from other clients'.
    """
    kcat = require_kcat()
    mid = unique_name("m")
    lines = [serialize(f.member_upserted(unique_name("e"), member_id=mid, title="Kcat Engineer")),
             serialize(f.action(unique_name("e"), "click", 2, member_id=mid, job_id="j-kcat"))]
    for topic, line in zip(["members", "member-actions"], lines):
        subprocess.run(
            [kcat, "-P", "-b", kafka_bootstrap, "-t", topic, "-K", "|",
             "-X", "topic.partitioner=murmur2_random"],
            input=f"{mid}|".encode() + line + b"\n", check=True, timeout=60,
        )
    state = member_with(worker, mid, lambda v: v["profile"] and v["counts"].get("click") == 1, "kcat events")
    assert state["profile"]["title"] == "Kcat Engineer"


def test_a_newer_producers_added_fields_and_a_v1_producers_events_are_applied(worker, kafka_bootstrap):
    """The compatibility policy (streams.schemas) on a running worker: a field it does not
    know is applied and kept, not dead-lettered; a v1 event reads as v2."""
    mid = unique_name("m")
    newer = json.loads(serialize(f.member_upserted(unique_name("e"), member_id=mid, title="Newer Producer")))
    newer["trace_id"] = "t-42"
    newer["payload"]["pronouns"] = "they/them"
    older = json.loads(serialize(f.action(unique_name("e"), "click", 1, member_id=mid, job_id="j-v1")))
    older["schema"] = "hirestream.v1"
    view = json.loads(serialize(f.action(unique_name("e"), "view", 2, member_id=mid, job_id="j-v1")))
    view["payload"]["dwell_s"] = 95.0
    producer = make_producer(kafka_bootstrap)
    try:
        producer.send("members", key=mid.encode(), value=json.dumps(newer).encode())
        for action in (older, view):
            producer.send("member-actions", key=mid.encode(), value=json.dumps(action).encode())
        producer.flush()
    finally:
        producer.close()
    state = member_with(worker, mid, lambda v: v["profile"] and v["counts"].get("view") == 1, "added-field events")
    assert state["profile"]["title"] == "Newer Producer"
    assert state["profile"]["pronouns"] == "they/them"  # kept in the state, not dropped
    assert state["counts"] == {"click": 1, "view": 1}


def dead_letters(bootstrap: str, topic: str, until) -> list:
    consumer = KafkaConsumer(
        f"{topic}.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=None, consumer_timeout_ms=1000,
    )
    seen = []
    try:
        def probe():
            seen.extend(consumer)
            return until(seen)
        wait_for(probe, 60, f"dead letters on {topic}.dlq")
    finally:
        consumer.close()
    return seen


def test_malformed_message_goes_to_dlq_and_the_next_is_processed(worker, kafka_bootstrap):
    mid = unique_name("m")
    broken = b'{"schema": "hirestream.v1", "event_id": "bad-' + uuid.uuid4().hex.encode() + b'", "type":'
    no_reason = json.loads(serialize(f.action(unique_name("e"), "apply", member_id=mid)))
    no_reason["payload"].update(action="dismiss")  # a dismiss without its feedback reason
    with EventProducer(kafka_bootstrap) as p:
        p.send_raw("member-actions", broken, key=mid.encode())
        p.send_raw("member-actions", json.dumps(no_reason).encode(), key=mid.encode())
        p.send(f.action(unique_name("e"), "save", 3, member_id=mid))
    member_with(worker, mid, lambda v: v["counts"] == {"save": 1}, "the good event after the bad ones")

    mine = lambda recs: [r for r in recs if r.key == mid.encode()]  # noqa: E731
    records = mine(dead_letters(kafka_bootstrap, "member-actions", lambda recs: len(mine(recs)) >= 2))
    assert [r.value for r in records] == [broken, json.dumps(no_reason).encode()]  # original bytes
    headers = [dict(r.headers) for r in records]
    assert b"Invalid JSON" in headers[0]["error"]
    assert b"needs a feedback reason" in headers[1]["error"]
    assert headers[0]["source_topic"] == b"member-actions"


def test_redelivered_event_changes_nothing(worker, kafka_bootstrap):
    mid = unique_name("m")
    apply = f.action(unique_name("e"), "apply", 1, member_id=mid)
    marker = f.action(unique_name("e"), "view", 2, member_id=mid)
    with EventProducer(kafka_bootstrap) as p:
        p.send(apply)
        p.send(apply)  # the same event delivered twice
        p.send(marker)  # processed after both copies (same partition, in order)
    state = member_with(worker, mid, lambda v: v["counts"].get("view") == 1, "the marker event")
    assert state["counts"] == {"apply": 1, "view": 1}
    assert len(state["history"]) == 2


def test_a_dead_letter_too_big_to_resend_is_cut_to_fit_and_its_batch_is_applied(worker, kafka_bootstrap):
    """A value the broker accepted compressed is over the producer's request size when
    dead-lettered uncompressed. It used to fail the send, crash the agent and ack its
    batch: the valid events around it vanished. Now the dead letter is cut to fit, says
    how big the original was, and every valid event is applied."""
    mid = unique_name("m")
    oversized = b'{"schema": "hirestream.v1", "event_id": "' + b"x" * 1_500_000  # not JSON, 1.5 MB
    with EventProducer(kafka_bootstrap, compression_type="gzip", max_request_size=4 << 20) as p:
        for i in range(40):
            if i == 20:
                p.send_raw("member-actions", oversized, key=mid.encode())
            p.send(f.action(f"{mid}-{i}", "view", i / 10, member_id=mid, job_id=f"j{i}"))
    member_with(worker, mid, lambda v: v["counts"].get("view", 0) >= 40, "every valid event around it")
    assert worker.member(mid)["counts"] == {"view": 40}

    mine = lambda recs: [r for r in recs if r.key == mid.encode()]  # noqa: E731
    record = mine(dead_letters(kafka_bootstrap, "member-actions", mine))[0]
    headers = dict(record.headers)
    assert headers["original_value_size"] == str(len(oversized)).encode()
    assert 0 < len(record.value) < 1_000_000 and oversized.startswith(record.value)
    assert b"exceeds max_event_bytes" in headers["error"]  # too big to be an event at all


def test_a_message_without_its_key_or_off_its_partition_is_dead_lettered(worker, kafka_bootstrap):
    """State is partitioned by key: a keyless event, or one on a partition other than its
    key's murmur2 partition, would be folded into state its member's owner never sees."""
    mid = unique_name("m")
    home = java_partition(mid.encode(), PARTITIONS)
    keyless = serialize(f.action(unique_name("e"), "click", 1, member_id=mid))
    elsewhere = serialize(f.action(unique_name("e"), "apply", 2, member_id=mid))
    producer = make_producer(kafka_bootstrap)
    try:
        producer.send("member-actions", key=None, value=keyless, partition=home)
        producer.send("member-actions", key=mid.encode(), value=elsewhere, partition=(home + 1) % PARTITIONS)
        producer.send("member-actions", key=mid.encode(), value=serialize(f.action(unique_name("e"), "save", 3,
                                                                                   member_id=mid)))
        producer.flush()
    finally:
        producer.close()
    mine = lambda recs: {r.value: dict(r.headers) for r in recs if r.value in (keyless, elsewhere)}  # noqa: E731
    refused = mine(dead_letters(kafka_bootstrap, "member-actions", lambda recs: len(mine(recs)) == 2))
    assert b"no key" in refused[keyless]["error"]
    assert f"belongs on partition {home}".encode() in refused[elsewhere]["error"]
    assert refused[elsewhere]["source_partition"] == str((home + 1) % PARTITIONS).encode()
    state = member_with(worker, mid, lambda v: v["counts"].get("save") == 1, "the well-keyed event")
    assert state["counts"] == {"save": 1}


def test_the_worker_says_what_it_waits_on_and_where_it_reads(worker, kafka_bootstrap):
    mid = unique_name("m")
    with EventProducer(kafka_bootstrap) as p:
        p.send(f.member_upserted(unique_name("e"), member_id=mid))
    member_with(worker, mid, lambda v: v["profile"], "the profile")
    state = worker.debug_tasks()
    partition = f"members-{java_partition(mid.encode(), PARTITIONS)}"
    assert partition in state["assigned"] and partition in state["active"]
    read = state["offsets"][partition]
    assert read["read"] is not None and read["position"] > read["read"]  # the event was read
    assert read["highwater"] >= read["position"]
    assert any("_execute_actor" in task for task in state["tasks"])  # the agents are waiting


def test_crash_and_restart_lose_nothing_and_count_nothing_twice(kafka_bootstrap, tmp_path):
    """SIGKILL mid-stream (no commit, no flush), restart on the same RocksDB directory:
    every member's counts end exactly as produced."""
    app_id = unique_name("hs-crash")  # its own consumer group and changelogs
    members = [unique_name("m") for _ in range(20)]
    per_member = 60
    worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, loglevel="info")
    try:
        produce_views(kafka_bootstrap, members, per_member)
        worker.wait_for(lambda: views_handled(worker) >= per_member * len(members) // 4, 120,
                        "a quarter of the events")
        worker.crash()
        worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, loglevel="info")
        assert_exact_view_counts(worker, members, per_member, "after the restart")
    finally:
        worker.stop()
    assert_members_on_their_partitions(tmp_path / "w", members)


def test_a_new_disk_is_rebuilt_from_the_changelogs(kafka_bootstrap, tmp_path):
    """Every table change reaches its changelog topic: a worker started on an empty
    directory (a lost machine) restores the same member states and jobs without
    reprocessing a source event."""
    app_id = unique_name("hs-disk")
    members = [unique_name("m") for _ in range(6)]
    jid = unique_name("j")
    worker = start_worker(kafka_bootstrap, tmp_path / "first", app_id)
    try:
        with EventProducer(kafka_bootstrap) as p:
            p.send(f.job_posted(unique_name("e"), job_id=jid))
            for i in range(5):
                for mid in members:
                    p.send(f.action(f"{mid}-{i}", "click", i / 10, member_id=mid, job_id=jid))
        before = {mid: member_with(worker, mid, lambda v: v["counts"].get("click") == 5, mid) for mid in members}
        job_before = worker.wait_for(lambda: worker.job(jid), 60, "the job")
        # A new group starts at the earliest offset, so the worker also works through
        # what earlier tests produced; stop it only once everything is committed, so
        # that any event the second worker handles would be a reprocessed one.
        worker.wait_for(lambda: everything_committed(worker), 120, "every source event committed")
    finally:
        worker.stop()
    worker = start_worker(kafka_bootstrap, tmp_path / "second", app_id)
    try:
        after = {mid: member_with(worker, mid, lambda v: True, f"{mid} restored") for mid in members}
        assert after == before
        assert worker.job(jid) == job_before
        assert (worker.stats() or {}).get("processed_total") == 0  # from the changelogs alone
    finally:
        worker.stop()


def test_a_redelivery_older_than_the_event_id_window_changes_nothing(kafka_bootstrap, tmp_path):
    """Every event is applied, nothing committed, then SIGKILL: on restart the worker
    reads all of them again. 100 events per member is more than the 64-id window, so
    the oldest are recognised only by the offsets the member's state keeps."""
    app_id = unique_name("hs-redeliver")
    members = [unique_name("m") for _ in range(5)]
    per_member = 100
    no_commits = dict(commit_interval=3600)  # the first commit would come after an hour
    worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, **no_commits)
    try:
        produce_views(kafka_bootstrap, members, per_member)
        assert_exact_view_counts(worker, members, per_member, "before the crash")
        worker.crash()
        worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, **no_commits)
        # One more view each, after every redelivered one on the member's partition.
        with EventProducer(kafka_bootstrap) as p:
            for mid in members:
                p.send(f.action(f"{mid}-last", "view", 20, member_id=mid, job_id="j-last"))
        assert_exact_view_counts(worker, members, per_member + 1, "after every event was read again")
        assert sum((worker.stats() or {}).get("duplicates", {}).values()) >= per_member * len(members)
    finally:
        worker.stop()


def test_a_changelog_record_the_broker_refuses_is_never_committed_over(kafka_bootstrap, tmp_path):
    """The broker refuses one changelog record (over its changelog topic's
    max.message.bytes). The worker stops before any commit covers the event; once the
    limit is raised, a restart reprocesses it, the changelog catches up (the event is a
    duplicate of what RocksDB holds, so its stored value is written again), and a new
    disk rebuilt from the changelog holds the same state."""
    app_id = unique_name("hs-refused")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    changelog = f"{app_id}-member-state-changelog"
    # The five views' state is ~2 KB; the profile below makes it ~26 KB.
    admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs={
        "cleanup.policy": "compact", "max.message.bytes": str(16 << 10)})])
    mid = unique_name("m")
    worker = start_worker(kafka_bootstrap, tmp_path / "first", app_id)
    try:
        with EventProducer(kafka_bootstrap) as p:
            for i in range(5):
                p.send(f.action(f"{mid}-{i}", "view", i / 10, member_id=mid, job_id=f"j{i}"))
        member_with(worker, mid, lambda v: v["counts"].get("view") == 5, "the small events")
        big = f.member_upserted(unique_name("e"), 1, member_id=mid, about="y" * 5000,
                                skills=[f"skill {k} " + "x" * 180 for k in range(100)])
        producer = make_producer(kafka_bootstrap)
        sent = producer.send("members", key=mid.encode(), value=serialize(big)).get(timeout=30)
        producer.close()
        wait_for(lambda: not worker.alive, 60, "the worker to stop on the refused changelog record")
        assert worker.proc.returncode == EXIT_FATAL, worker.log_tail()
        committed = admin.list_group_offsets(app_id)[app_id].get(TopicPartition("members", sent.partition))
        assert committed is None or committed.offset <= sent.offset  # the event will be read again

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, changelog,
                                            configs={"max.message.bytes": str(4 << 20)})])
        worker = start_worker(kafka_bootstrap, tmp_path / "first", app_id)
        state = member_with(worker, mid, lambda v: v["profile"] and v["profile"]["about"], "the big profile")
        assert state["counts"] == {"view": 5}
        worker.wait_for(lambda: everything_committed(worker), 120, "every source event committed")
    finally:
        worker.stop()
        admin.close()
    worker = start_worker(kafka_bootstrap, tmp_path / "second", app_id)
    try:
        assert member_with(worker, mid, lambda v: True, "the member, from the changelog") == state
    finally:
        worker.stop()


def test_after_a_crash_the_changelogs_hold_exactly_what_the_store_holds(kafka_bootstrap, tmp_path):
    """SIGKILL mid-stream while the latest changelog records still wait in the producer
    (RocksDB is ahead of the changelog); restart on the same disk until everything is
    committed; SIGKILL again. A worker on an empty disk, rebuilt from the changelogs
    alone, holds exactly the crashed worker's RocksDB state, key for key.

    The `quiet` members get no event after the first crash, so only the redelivery of
    their last events can bring their changelog up to RocksDB."""
    app_id = unique_name("hs-changelog")
    streaming = [unique_name("m") for _ in range(20)]
    quiet = [unique_name("q") for _ in range(10)]
    # Changelog records wait 2 s in the producer, and no commit flushes them sooner.
    slow_changelog = dict(producer_linger=2.0, commit_interval=30)
    worker = start_worker(kafka_bootstrap, tmp_path / "crashed", app_id, **slow_changelog)
    try:
        produce_member_events(kafka_bootstrap, streaming, range(0, 20))
        produce_member_events(kafka_bootstrap, quiet, range(0, 3))

        def applied():
            views = {mid: ((worker.member(mid) or {}).get("counts") or {}).get("view", 0) for mid in streaming + quiet}
            return all(views[m] >= 20 for m in streaming) and all(views[m] >= 3 for m in quiet)
        worker.wait_for(applied, 120, "the events before the crash in RocksDB")
        worker.crash()
        worker = start_worker(kafka_bootstrap, tmp_path / "crashed", app_id)
        produce_member_events(kafka_bootstrap, streaming, range(20, 40))
        assert_exact_view_counts(worker, streaming, 40, "after the restart", hired=2)
        assert_exact_view_counts(worker, quiet, 3, "after the restart")
        worker.wait_for(lambda: everything_committed(worker), 120, "every source event committed")
    finally:
        worker.crash()
    crashed = stored_members(tmp_path / "crashed")
    assert set(streaming + quiet) <= set(crashed)

    rebuilt_worker = start_worker(kafka_bootstrap, tmp_path / "rebuilt", app_id)
    try:
        for mid in streaming + quiet:
            member_with(rebuilt_worker, mid, lambda v: True, f"{mid} restored")
        assert (rebuilt_worker.stats() or {}).get("processed_total") == 0  # from the changelogs alone
    finally:
        rebuilt_worker.stop()
    rebuilt = stored_members(tmp_path / "rebuilt")
    assert rebuilt.keys() == crashed.keys()
    assert [k for k in crashed if rebuilt[k] != crashed[k]] == []


def produce_member_events(bootstrap: str, members: list[str], steps: range) -> None:
    """Step i for each member, interleaved: a view, a profile upsert every 10th step and
    a hire at steps 5 and 25, so all three member topics write each member's state."""
    with EventProducer(bootstrap) as p:
        for i in steps:
            for mid in members:
                if i % 10 == 0:
                    p.send(f.member_upserted(f"{mid}-p{i}", i / 10, member_id=mid, title=f"Title {i}"))
                if i % 20 == 5:
                    p.send(f.hire(f"{mid}-h{i}", i / 10, member_id=mid, job_id=f"j{i}"))
                p.send(f.action(f"{mid}-{i}", "view", i / 10, member_id=mid, job_id=f"j{i}"))


def stored_members(data_dir: Path, partitions: int = PARTITIONS) -> dict[str, dict]:
    """Every member-state entry in a worker's RocksDB directory (the worker stopped)."""
    from rocksdict import AccessType, Rdict

    found = {}
    for p in range(partitions):
        db = Rdict(str(data_dir / f"worker/v1/tables/member-state-{p}.db"), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                if isinstance(key, bytes) and key.startswith(b"__faust"):
                    continue  # faust's own offset bookkeeping
                found[json.loads(key)] = json.loads(value)
        finally:
            db.close()
    return found


def everything_committed(worker: WorkerProcess) -> bool:
    """The worker has committed every source partition up to its end (`/debug/tasks/`),
    or has nothing to commit there: a partition whose records were all deleted (log
    start = end, as tests/test_replica.py leaves the raw topics on the shared broker)
    gives a new group nothing to read, so nothing is ever committed on it."""
    offsets = (worker.debug_tasks() or {}).get("offsets") or {}
    if not offsets or any(o["highwater"] is None for o in offsets.values()):  # None: not fetched yet
        return False
    behind = {name: o["highwater"] for name, o in offsets.items() if (o["committed"] or 0) < o["highwater"]}
    return not behind or all(_log_starts(worker.bootstrap, behind)[name] >= end for name, end in behind.items())


def _log_starts(bootstrap: str, tp_names) -> dict[str, int]:
    """Each partition's log start offset (`topic-N` names), in one request."""
    from kafka import KafkaConsumer, TopicPartition

    tps = {name: TopicPartition(name.rpartition("-")[0], int(name.rpartition("-")[2])) for name in tp_names}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        starts = consumer.beginning_offsets(list(tps.values()))
        return {name: starts[tp] for name, tp in tps.items()}
    finally:
        consumer.close()


def assert_members_on_their_partitions(data_dir: Path, members: list[str], partitions: int = PARTITIONS) -> None:
    """Each member's state sits in the RocksDB partition its Kafka key maps to, so the
    worker that owns a member's partition owns its state (batched writes included)."""
    from rocksdict import AccessType, Rdict

    found = {}
    for p in range(partitions):
        db = Rdict(str(data_dir / f"worker/v1/tables/member-state-{p}.db"), access_type=AccessType.read_only())
        try:
            for key in db.keys():
                if isinstance(key, bytes) and key.startswith(b"__faust"):
                    continue  # faust's own offset bookkeeping
                found[json.loads(key)] = p
        finally:
            db.close()
    assert {m: found.get(m) for m in members} == {m: java_partition(m.encode(), partitions) for m in members}
