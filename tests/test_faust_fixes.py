"""The faust fixes in `streams.faust_fixes`, pinned to the behaviour they fix.

The recovery fix is proven in a real worker (its log says the fixed path ran); what
the fixes prevent end to end (events lost or applied twice after a restart, failed
produces committed over) is shown by `tests/test_stream_worker.py`.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

import streams.app  # noqa: F401  (applies the fixes, as the worker does)
from streams import faust_fixes
from streams.producer import EventProducer
from tests import factories as f
from tests.kafka_helpers import unique_name


def test_the_consumer_thread_fetches_a_snapshot_of_the_active_partitions():
    live = {TP("member-actions", 0), TP("member-actions", 1)}
    seen = {}

    async def call_thread(fn, consumer, partitions, **kwargs):
        seen["partitions"] = partitions
        live.clear()  # faust pauses partitions while the fetch waits
        return {}

    thread = SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(_max_poll_records=None),
                             call_thread=call_thread, _fetch_records=None)
    asyncio.run(AIOKafkaConsumerThread.getmany(thread, live, 1.0))
    # An emptied live set would read as "every partition" to aiokafka.
    assert seen["partitions"] == {TP("member-actions", 0), TP("member-actions", 1)}
    assert isinstance(seen["partitions"], frozenset)


def test_the_fixes_refuse_another_faust_version(monkeypatch):
    faust_fixes.check_versions()  # the installed faust is the one they target
    monkeypatch.setattr(faust_fixes.faust, "__version__", "0.15.4")
    with pytest.raises(faust_fixes.FaustVersionMismatch, match="0.15.3"):
        faust_fixes.check_versions()


def test_the_fixes_refuse_a_changed_faust_function(monkeypatch):
    from faust.tables.recovery import Recovery
    monkeypatch.setitem(faust_fixes._ORIGINAL_SOURCE, (Recovery, "on_recovery_completed"), "0" * 16)
    with pytest.raises(faust_fixes.FaustVersionMismatch, match="on_recovery_completed"):
        faust_fixes.check_versions()


@pytest.mark.kafka
def test_a_real_worker_recovers_through_the_fixed_path(kafka_bootstrap, tmp_path):
    """A worker with tables restarts with changelogs to restore: faust takes
    `Recovery.on_recovery_completed` (not `_resume_streams`), and the worker's log says
    the fixed one ran, with every source partition paused in aiokafka during its seek."""
    from streams.settings import Settings
    from streams.topics import ALL_TOPICS
    from tests.stream_helpers import member_with
    from tests.test_stream_worker import start_worker

    app_id = unique_name("hs-recovery")
    mid = unique_name("m")
    worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, loglevel="info")
    try:
        with EventProducer(kafka_bootstrap) as p:
            p.send(f.member_upserted(unique_name("e"), member_id=mid))
        member_with(worker, mid, lambda v: v["profile"], "the profile")
        worker.crash()
        worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id, loglevel="info")
        marks = worker.wait_for(lambda: len(m := _recovery_marks(worker)) >= 2 and m, 60,
                                "the fixed recovery in the worker log, twice")
    finally:
        worker.stop()
    assert len(marks) >= 2  # the first start and the restart
    assert all("paused during the seek: True" in line for line in marks), marks
    # Fix 7: one worker writes every partition of the global tables; none is read back.
    global_partitions = 2 * Settings().member_partitions  # job-catalog and companies
    assert all(f"own global-table changelog partitions left paused: {global_partitions})" in line
               for line in marks), marks
    # Fix 9 on the path a worker takes: its first start has committed nothing on any
    # source partition, and faust's seek rewound them to their earliest offsets; never
    # a changelog partition (faust positions those from the tables' own offsets).
    rewinds = [line for line in worker.log_path.read_text(errors="replace").splitlines()
               if faust_fixes.REWIND_MARK in line]
    assert rewinds, "fix 9 never ran in the worker"
    source_partitions = len(ALL_TOPICS) * Settings().member_partitions + 1  # + faust's leader topic
    assert all(0 < int(line.rsplit(":", 1)[1]) <= source_partitions for line in rewinds), rewinds


def _recovery_marks(worker) -> list[str]:
    lines = worker.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if faust_fixes.RECOVERY_MARK in line]


def test_a_worker_pauses_the_global_changelog_partitions_it_writes_once_restored():
    """With recovery_buffer_size=1 faust keeps reading a global table's partitions this
    worker writes itself (its own records, applied again one by one in the fetch loop
    that feeds the agents). After recovery only the partitions other workers write
    (the table's standbys) stay resumed; a plain table's partitions are left alone."""
    from faust.transport.consumer import Consumer

    jobs = SimpleNamespace(is_global=True)
    members = SimpleNamespace(is_global=False)
    own, others = TP("hs-job-catalog-changelog", 0), TP("hs-job-catalog-changelog", 1)
    member_state = TP("hs-member-state-changelog", 0)
    recovery = SimpleNamespace(active_tps={own, others, member_state}, standby_tps={others},
                               tp_to_table={own: jobs, others: jobs, member_state: members})
    assert faust_fixes.own_global_changelog_tps(recovery) == {own}

    consumer = SimpleNamespace(_active_partitions={own, others, member_state}, _paused_partitions=set())
    consumer._get_active_partitions = lambda: consumer._active_partitions
    consumer.pause_partitions = lambda tps: Consumer.pause_partitions(consumer, tps)
    faust_fixes._pause_own_global_changelogs(recovery, consumer)
    assert consumer._active_partitions == {others, member_state}
    assert consumer._paused_partitions == {own}


def test_the_changelog_queue_keeps_the_records_of_partitions_still_assigned():
    """faust empties its changelog queue whenever flow control resumes; records already
    fetched for a standby or global-table copy were skipped for good. Now only records
    of partitions no longer assigned are dropped."""
    from mode.utils.queues import FlowControlEvent

    standby, revoked = TP("hs-job-catalog-changelog", 1), TP("hs-job-catalog-changelog", 2)
    recovery = SimpleNamespace(active_tps=set(), standby_tps={standby})

    def record(tp, offset):
        return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))

    async def scenario():
        from faust.tables.manager import TableManager

        flow = FlowControlEvent(initially_suspended=False)
        app = SimpleNamespace(conf=SimpleNamespace(stream_buffer_maxsize=100), flow_control=flow,
                              FlowControlQueue=lambda **kw: _faust_queue(flow, **kw))
        tables = SimpleNamespace(_changelog_queue=None, app=app, recovery=recovery)
        queue = TableManager.changelog_queue.fget(tables)  # the queue faust's recovery reads
        for event in (record(standby, 7), record(revoked, 3), record(standby, 8)):
            queue.put_nowait(event)
        flow.resume()  # what recovery and every agent start do
        return [(await asyncio.wait_for(queue.get(), 1.0)).message.offset for _ in range(2)]
    assert asyncio.run(scenario()) == [7, 8]


def _faust_queue(flow, maxsize=None, clear_on_resume=False):
    from mode.utils.queues import ThrowableQueue  # what faust's app.FlowControlQueue builds
    return ThrowableQueue(maxsize=maxsize, flow_control=flow, clear_on_resume=clear_on_resume)


def test_the_producer_faust_builds_is_idempotent():
    """Changelog order through retries: the aiokafka producer faust builds for the app
    (not only a transactional one) has idempotence on, hence acks=all."""
    from streams.app import app

    async def build():
        producer = app.producer._new_producer()
        try:
            return producer._txn_manager is not None
        finally:
            await producer.stop()
    assert asyncio.run(build())


def test_an_assignment_leaves_out_a_global_changelog_the_metadata_does_not_show_yet():
    """A new app id's workers create their changelogs as they start. faust's assignor
    raised KeyError when the leader's metadata did not show a global table's changelog
    yet, and the group waited for ever with nothing assigned (seen with two workers
    starting at once on 12 partitions). Now that table sits out this assignment;
    aiokafka rejoins when its metadata shows the topic."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
    from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

    from streams.app import app, companies, job_catalog, member_state

    changelogs = [t.changelog_topic.get_topic_name() for t in (member_state, job_catalog, companies)]
    subscription = ["members", "member-actions", "hires", "jobs", "companies", *changelogs]
    shown = {topic: 4 for topic in subscription if topic != changelogs[1]}  # job-catalog's is not yet
    cluster = SimpleNamespace(partitions_for_topic=lambda t: set(range(shown[t])) if t in shown else None)
    me = ClientMetadata(assignment=ClientAssignment(actives={}, standbys={}), url="http://127.0.0.1:1",
                        changelog_distribution={}).dumps()
    assignment = app.assignor._perform_assignment(cluster, {"w1": ConsumerProtocolMemberMetadata(0, subscription, me)})
    assigned = {topic: partitions for topic, partitions in assignment["w1"].assignment}
    assert assigned[changelogs[2]] == [0, 1, 2, 3]  # the other global table: every partition
    assert assigned[changelogs[0]] == [0, 1, 2, 3] and changelogs[1] not in assigned





def test_a_record_lingering_when_the_producer_first_meets_a_topic_is_delivered(kafka_bootstrap, monkeypatch):
    """Fix 8, on faust's own Producer (the class a worker's changelog and DLQ writes go
    through). The producer knows topic `known` from a refresh of every topic's metadata
    (as faust's declare-before-send leaves it) and has a record for it lingering; then
    it first sends to `new`, which its metadata does not show. aiokafka alone tracked
    `new` only, its refresh dropped `known`, and the record waited for a leader until it
    expired (here: past the 20 s the test allows; faust: 20 min)."""
    import faust
    from aiokafka.structs import TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from streams.delivery import deliveries

    # Fix 4 ends the process when a watched record fails, as a stranded one does when
    # the producer stops: here that must fail this test, not end the test run.
    monkeypatch.setattr(deliveries, "watch", lambda fut, what: None)
    known, new = unique_name("known"), unique_name("new")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)

    async def scenario() -> None:
        producer = faust.App(unique_name("hs-producer"), broker=f"kafka://{kafka_bootstrap}",
                             producer_linger=3.0).producer
        await producer.start()
        try:
            client = producer._ensure_producer().client
            admin.create_topics([NewTopic(known, 1, 1)])
            while client.cluster.leader_for_partition(TopicPartition(known, 0)) in (None, -1):
                await client.force_metadata_update()  # every topic's: nothing is tracked yet
            lingering = await producer.send(known, b"k", b"v", None, None, None)
            admin.create_topics([NewTopic(new, 1, 1)])
            await producer.send(new, b"k", b"v", None, None, None)
            await asyncio.wait_for(lingering, 20)
            assert {known, new} <= set(client._topics)
        finally:
            # A stranded record holds the producer's stop until it expires: the timeout
            # above has already failed the test then.
            await asyncio.wait([asyncio.ensure_future(producer.stop())], timeout=15)
    try:
        asyncio.run(scenario())
    finally:
        admin.close()


def test_a_worker_tracks_every_topic_it_produces_to(kafka_bootstrap, tmp_path):
    """Fix 8 in a real worker: after its first changelog record and its first dead
    letter, its producer's metadata tracks both topics (`/debug/tasks/` shows it);
    without the fix it tracked none, and one refresh for a new topic dropped them."""
    import uuid

    from tests.stream_helpers import member_with
    from tests.test_stream_worker import dead_letters, start_worker

    app_id, mid = unique_name("hs-metadata"), unique_name("m")
    broken = b'{"schema": "hirestream.v1", "event_id": "bad-' + uuid.uuid4().hex.encode() + b'", "type":'
    worker = start_worker(kafka_bootstrap, tmp_path / "w", app_id)
    try:
        with EventProducer(kafka_bootstrap) as p:
            p.send(f.member_upserted(unique_name("e"), member_id=mid))
            p.send_raw("members", broken, key=mid.encode())
        member_with(worker, mid, lambda v: v["profile"], "the profile")
        mine = lambda recs: [r for r in recs if r.key == mid.encode()]  # noqa: E731
        assert [r.value for r in mine(dead_letters(kafka_bootstrap, "members", mine))] == [broken]
        tracked = set(worker.debug_tasks()["producer_metadata"]["tracked"])
    finally:
        worker.stop()
    assert {f"{app_id}-member-state-changelog", "members.dlq"} <= tracked, tracked


@pytest.mark.kafka
def test_a_partition_never_committed_is_rewound_past_records_fetched_before_the_seek(kafka_bootstrap):
    """Fix 9, with faust's consumer thread over a real aiokafka group consumer on the
    real broker. faust drops records fetched while a rebalance or recovery is under way
    and counts on `seek_to_committed` to read them again. A fresh partition's records
    are fetched (the position passes them, nothing is committed), then faust seeks to
    committed: the records must be read again. aiokafka alone seeks only partitions
    committed above 0, so they were gone (a hire lost in CI's chaos run)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = unique_name("hs-never-committed")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(3):
        producer.send(topic, key=b"k", value=f"record {i}".encode())
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 0)

    async def read_three(consumer) -> list[bytes]:
        got: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < 3 and asyncio.get_running_loop().time() < deadline:
            got += [r.value for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs]
        return got

    async def scenario():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=unique_name("hs-g"),
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            first = await read_three(consumer)
            position, committed = await consumer.position(tp), await consumer.committed(tp)
            # faust's thread runs the consumer's calls on its own loop; here, on this one.
            thread = SimpleNamespace(_ensure_consumer=lambda: consumer,
                                     call_thread=lambda fn, *args, **kwargs: fn(*args, **kwargs),
                                     app=SimpleNamespace(tables=SimpleNamespace(changelog_topics=set())))
            seek_result = await AIOKafkaConsumerThread.seek_to_committed(thread)
            again = await read_three(consumer)
        finally:
            await consumer.stop()
        return first, position, committed, seek_result, again

    first, position, committed, seek_result, again = asyncio.run(scenario())
    assert first == [b"record 0", b"record 1", b"record 2"] and position == 3 and committed is None
    assert seek_result == {tp: None}  # faust's bookkeeping still sees "never committed"
    assert again == first
