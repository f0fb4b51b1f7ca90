"""The serving replica against the real broker: it bootstraps from what Kafka keeps
for ever (the job-catalog changelog, compacted `members`, `hires`), so a restarted
server still knows jobs and profiles older than the raw topics' retention, and it
says it is ready only once caught up with the end offsets it saw at start."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from infra.worker_process import WorkerProcess
from serving.online.engine import MatchingEngine
from serving.online.replica import IndexReplica
from streams.producer import EventProducer
from streams.schemas import (
    ActionType, HireConfirmed, MemberAction, MemberActed, MemberUpserted, ScoreRequest, ScoreRequested, ScoreStatus,
)
from tests import factories as f
from tests.kafka_helpers import free_port, unique_name
from tests.test_scoring_agent import FAST, read_result

pytestmark = pytest.mark.kafka


def expire_retention(bootstrap: str, topics: list[str]) -> dict[str, bool]:
    """Do to `topics` what time retention does once their records are older than
    `retention.ms` (a week, here): move each partition's log start to its end
    (DeleteRecords). A topic whose configs keep records for ever (compacted, or
    `retention.ms=-1`) is left alone, as retention would leave it. Returns, per
    topic, whether its records were expired."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    expired = {}
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics],
                                           config_filter="all")
        for topic in topics:
            configs = {k: v["value"] for k, v in described["topic"][topic].items()}
            expired[topic] = "delete" in configs["cleanup.policy"] and configs["retention.ms"] != "-1"
            if expired[topic]:
                parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
                admin.delete_records(consumer.end_offsets(parts))
    finally:
        consumer.close()
        admin.close()
    return expired


def serving_status(worker: WorkerProcess) -> dict | None:
    return worker._get("/serving/")


def test_a_restarted_server_remembers_jobs_and_profiles_past_retention(kafka_bootstrap, tmp_path):
    """Finding 7: the replica rebuilt from raw topics that keep a week, so a server
    restarted a week later had no jobs and no profiles to match."""
    uid = unique_name("x").replace("-", "")
    trade = f"lampwright{uid}"
    mid, open_job, closed_job = unique_name("m"), unique_name("j"), unique_name("j")
    app_id = unique_name("hs-replica")

    def serve() -> WorkerProcess:
        w = WorkerProcess(kafka_bootstrap, tmp_path / "serve", free_port(), command="serve", app_id=app_id,
                          serving_scorer="bm25", **FAST).start()
        w.wait_ready(timeout=90)
        return w

    first = serve()
    try:
        with EventProducer(kafka_bootstrap) as p:
            for jid, title in ((open_job, f"Senior {trade}"), (closed_job, f"Lead {trade}")):
                p.send(f.job_posted(unique_name("e"), 0, job_id=jid, title=title, occupation=trade,
                                    company_id=f"c{uid}", skills=["Glass", "Torch"]))
            p.send(f.job_closed(unique_name("e"), closed_job, hours=1))
            p.send(f.member_upserted(unique_name("e"), 0, member_id=mid, title=trade, occupation=trade,
                                     skills=["Glass", "Torch"]))
            p.send(f.hire(unique_name("e"), 2, member_id=mid, job_id=closed_job))
        # Both jobs: they may sit on different partitions, and the raw events are about
        # to be expired, so one the worker has not handled yet would be gone for good.
        first.wait_for(lambda: (j := first.job(open_job)) and j["open"], 90, "the open job")
        first.wait_for(lambda: (j := first.job(closed_job)) and not j["open"], 90, "the closed job")
        first.wait_for(lambda: (m := first.member(mid)) and m["counts"].get("hired") == 1, 60, "the hire")
    finally:
        first.stop()  # graceful: faust flushes the tables' changelogs

    expired = expire_retention(kafka_bootstrap, ["jobs", "members", "hires", "member-actions"])
    assert expired["jobs"] and expired["member-actions"]  # raw events do go

    second = serve()
    try:
        status = second.wait_for(
            lambda: (s := serving_status(second)) and s.get("replica_ready", s.get("replica_lag") == 0) and s,
            90, "the restarted replica to catch up")
        request_id = unique_name("r")
        with EventProducer(kafka_bootstrap) as p:
            p.send(ScoreRequested(event_id=unique_name("e"), event_time=datetime.now(timezone.utc),
                                  payload=ScoreRequest(request_id=request_id, member_id=mid, k=5,
                                                       deadline_ms=30_000)))
        result = read_result(kafka_bootstrap, request_id).payload
    finally:
        second.stop()
    ids = [it.job_id for it in result.items]
    assert result.status is ScoreStatus.OK, result
    assert ids[:1] == [open_job], (ids, status)  # remembered, and matched through the profile's trade
    assert closed_job not in ids  # remembered as closed
    assert any(trade in r for r in result.items[0].reasons)


class GatedEngine(MatchingEngine):
    """An engine whose first fold waits for the test's go, and which logs the order of
    what it folds: the replica's bootstrap slowed down at will."""

    def __init__(self):
        super().__init__(None, keep_members=False)
        self.entered = threading.Event()
        self.go = threading.Event()
        self.folded: list[str] = []

    def apply(self, event) -> bool:
        self.entered.set()
        self.go.wait(60)
        self.folded.append(event.type)
        return super().apply(event)


def test_the_replica_is_ready_only_once_caught_up_and_reads_state_before_events(kafka_bootstrap):
    """Finding 7: the replica answered before it had caught up; and with no order
    across topics a hire read before its member's profile taught nothing."""
    mid = unique_name("m")
    with EventProducer(kafka_bootstrap) as p:  # in the topics before the replica starts
        p.send(f.hire(unique_name("e"), 1, member_id=mid, job_id=unique_name("j")))
        p.send(f.member_upserted(unique_name("e"), 0, member_id=mid))
    engine = GatedEngine()
    replica = IndexReplica(engine, kafka_bootstrap, ("hires",), poll_ms=100, bootstrap_first=("members",)).start()
    try:
        assert engine.entered.wait(60), "the replica folded nothing"
        assert not replica.ready and not replica.wait_ready(0.2)  # mid-bootstrap: not ready
        engine.go.set()
        assert replica.wait_ready(60), f"not ready: lag {replica.lag}, error {replica.error!r}"
        assert replica.error is None
        assert mid in engine.profiles  # everything before the start offsets is in
        first_hire = engine.folded.index(HireConfirmed.model_fields["type"].default)
        assert MemberUpserted.model_fields["type"].default not in engine.folded[first_hire:]  # profiles first
        positions = replica.start_offsets
        assert positions and all(k.split("-")[0] in ("members", "hires") for k in positions)
    finally:
        engine.go.set()
        replica.stop()


def test_the_replica_skips_what_the_worker_dead_letters(kafka_bootstrap):
    """`members` is compacted, so a wrongly keyed or far-future profile would stay in it
    for ever: the replica applies the worker's checks and never folds one."""
    from streams.schemas import serialize

    good, wrong_key, future = unique_name("m"), unique_name("m"), unique_name("m")
    far = f.member_upserted(unique_name("e"), member_id=future).model_copy(
        update={"event_time": datetime(9999, 1, 1, tzinfo=timezone.utc)})
    with EventProducer(kafka_bootstrap) as p:
        p.send_raw("members", serialize(f.member_upserted(unique_name("e"), member_id=wrong_key)), key=b"someone-else")
        p.send_raw("members", serialize(far), key=future.encode())
        p.send(f.member_upserted(unique_name("e"), member_id=good))
    engine = MatchingEngine(None, keep_members=False)
    replica = IndexReplica(engine, kafka_bootstrap, (), poll_ms=100, bootstrap_first=("members",)).start()
    try:
        assert replica.wait_ready(60), f"not ready: lag {replica.lag}, error {replica.error!r}"
        assert good in engine.profiles
        assert wrong_key not in engine.profiles and future not in engine.profiles
        assert replica.invalid >= 2
    finally:
        replica.stop()


def test_applies_read_from_kafka_teach_the_replica_links(kafka_bootstrap, tmp_path):
    """Issue 18: applies are observations for the learned links, on the path that runs.
    Two members of one trade apply (through Kafka) to a job of another trade (and one
    member of a third trade to a job of its own: a link is a lift over the rest); a
    third member of the first trade, who shares no term with that job, gets it back
    from a real serving worker with the learned link as a reason."""
    uid = unique_name("x").replace("-", "")
    trade, other, third = f"glazier{uid}", f"cooper{uid}", f"fletcher{uid}"
    job, third_job, members, third_member = unique_name("j"), unique_name("j"), [unique_name("m") for _ in range(3)], unique_name("m")
    link = "learned link "
    w = WorkerProcess(kafka_bootstrap, tmp_path / "serve", free_port(), command="serve",
                      app_id=unique_name("hs-links"), serving_scorer="bm25", **FAST).start()

    def reasons() -> list[str] | None:
        """The job's reasons in the third member's ranking (None while it is not there)."""
        request_id = unique_name("r")
        with EventProducer(kafka_bootstrap) as p:
            p.send(ScoreRequested(event_id=unique_name("e"), event_time=datetime.now(timezone.utc),
                                  payload=ScoreRequest(request_id=request_id, member_id=members[2], k=100,
                                                       deadline_ms=30_000)))
        return {it.job_id: it.reasons for it in read_result(kafka_bootstrap, request_id).payload.items}.get(job)

    try:
        w.wait_ready(timeout=90)
        with EventProducer(kafka_bootstrap) as p:
            p.send(f.job_posted(unique_name("e"), 0, job_id=job, title=f"Senior {other}", occupation=other,
                                company_id=f"c{uid}", skills=[f"staves{uid}"]))
            p.send(f.job_posted(unique_name("e"), 0, job_id=third_job, title=third, occupation=third,
                                company_id=f"c{uid}", skills=[f"arrows{uid}"]))
            for m, t in [(m, trade) for m in members] + [(third_member, third)]:
                p.send(f.member_upserted(unique_name("e"), 0, member_id=m, title=t, occupation=t,
                                         skills=[f"leading{uid}" if t == trade else f"arrows{uid}"]))
        # the job reaches the replica through the worker's job-catalog changelog, after the
        # worker's jobs agent: an apply the replica reads before that teaches nothing
        before = w.wait_for(lambda: (r := reasons()) is not None and r, 90, "the job in the replica")
        assert link not in " ".join(before)  # nobody has applied yet
        with EventProducer(kafka_bootstrap) as p:
            # now: an apply four weeks older than the newest one read teaches nothing
            for m, j in ((members[0], job), (members[1], job), (third_member, third_job)):
                p.send(MemberActed(event_id=unique_name("e"), event_time=datetime.now(timezone.utc),
                                   payload=MemberAction(member_id=m, action=ActionType.APPLY, job_id=j)))
        after = w.wait_for(lambda: (r := reasons()) and link in " ".join(r) and r, 90, "the learned link")
    finally:
        w.stop()
    assert any(r.startswith(link) and trade in r and uid in r.split(" -> ")[1] for r in after), after
