"""Several workers in one consumer group, on topics with the default partition count
(12): the member work is split between them, a member read is answered by the
member's owner whichever worker it reaches, and when a worker is SIGKILLed the
other takes over its partitions and applies every event exactly once.

These workers run against a broker of their own (the session's shared broker has 3
partitions per topic, tests/conftest.py), or against KAFKA_BOOTSTRAP's cluster with
whatever count its topics have. Run as `serve`, either worker ranks every member over
HTTP from its active or standby copy.
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from infra import broker
from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import COMPANIES_TABLE, JOB_CATALOG_TABLE
from tests import factories as f
from tests.kafka_helpers import USER_CLUSTER, java_partition, unique_name
from tests.stream_helpers import assert_exact_view_counts, member_with, produce_views

pytestmark = pytest.mark.kafka

DEFAULT_PARTITIONS = Settings.model_fields["member_partitions"].default
# A longer session than the other worker tests' 6 s: two workers restoring 12
# partitions each on a loaded two-core machine missed 6 s of heartbeats and were
# dropped from the group mid-test. It is also how long a dead worker keeps its
# partitions, the window in which its members are read from a standby copy.
FAST = dict(broker_session_timeout=10.0, broker_heartbeat_interval=3.0, commit_interval=0.5)
TOKEN = "s3cret-" + unique_name("t")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(bootstrap, partitions per topic)."""
    if USER_CLUSTER:
        yield USER_CLUSTER, broker.partition_counts(USER_CLUSTER, ["members"])["members"]
        return
    with broker.local_broker(tmp_path_factory.mktemp("kafka-default-partitions"), DEFAULT_PARTITIONS) as bootstrap:
        assert broker.partition_counts(bootstrap, ["members"]) == {"members": DEFAULT_PARTITIONS}
        yield bootstrap, DEFAULT_PARTITIONS


def start_pair(cluster, data_dir: Path, second: dict | None = None, **settings) -> list[WorkerProcess]:
    """Two workers of one new app id (one consumer group), each with its own data dir
    and web port, started together; `second`: settings of the second one only."""
    bootstrap, partitions = cluster
    app_id = unique_name("hs-scale")
    own = [{}, second or {}]
    workers = [WorkerProcess(bootstrap, data_dir / name, port, loglevel="info", app_id=app_id,
                             member_partitions=partitions, **{**FAST, **settings, **own[i]}).start()
               for i, (name, port) in enumerate(zip("ab", broker.free_ports(2)))]
    for w in workers:
        w.wait_ready(timeout=90)
    return workers


def split_now(workers: list[WorkerProcess], partitions: int, standbys: bool) -> list[set[int]] | None:
    """Each worker's share of the member-state partitions if the group has settled: the
    partitions split between the workers (with `standbys`, each keeping a standby copy
    of the other's), and every partition of the global tables' changelogs on both."""
    app_id = workers[0].settings["app_id"]
    global_changelogs = {f"{app_id}-{table}-changelog-{p}" for table in (JOB_CATALOG_TABLE, COMPANIES_TABLE)
                         for p in range(partitions)}
    states = [w.debug_tasks() or {} for w in workers]
    active = [set(s.get("member_state_active", ())) for s in states]
    standby = [set(s.get("member_state_standby", ())) for s in states]
    split = all(active) and not active[0] & active[1] and active[0] | active[1] == set(range(partitions))
    copied = standby[0] == active[1] and standby[1] == active[0]
    globals_everywhere = all(global_changelogs <= set(s.get("assigned", ())) for s in states)
    return active if split and (copied or not standbys) and globals_everywhere else None


def wait_split(workers: list[WorkerProcess], partitions: int, standbys: bool) -> list[set[int]]:
    return workers[0].wait_for(lambda: split_now(workers, partitions, standbys), 120,
                               "the group settled, the member-state partitions split between the workers")


def test_a_member_read_on_one_worker_is_answered_by_the_members_owner(cluster, tmp_path):
    """No standby copies here: a worker holds only its own partitions, so a member of
    the other worker's can only come from that worker (forwarded, the token along)."""
    a, b = start_pair(cluster, tmp_path, token=TOKEN, standby_replicas=0)
    try:
        wait_split([a, b], cluster[1], standbys=False)
        members = [unique_name("m") for _ in range(12)]
        with EventProducer(cluster[0]) as p:
            for i, mid in enumerate(members):
                p.send(f.member_upserted(unique_name("e"), member_id=mid, title=f"Title {i}"))
                for k in range(i + 1):
                    p.send(f.action(f"{mid}-{k}", "view", k / 10, member_id=mid, job_id=f"j{k}"))
        for i, mid in enumerate(members):  # 120 s: a loaded machine can rebalance (and recover) meanwhile
            member_with(a, mid, lambda v, n=i + 1: v["counts"].get("view") == n, f"{mid}'s events", timeout=120)
        active = wait_split([a, b], cluster[1], standbys=False)  # as it is now: a loaded machine can rebalance
        owner_of = {mid: 0 if java_partition(mid.encode(), cluster[1]) in active[0] else 1 for mid in members}
        assert set(owner_of.values()) == {0, 1}, "all members on one worker's partitions"
        for i, mid in enumerate(members):
            owner, other = (a, b) if owner_of[mid] == 0 else (b, a)
            direct, via_other = owner.member_answer(mid), other.member_answer(mid)
            assert (direct.status, via_other.status) == (200, 200), (direct, via_other)
            assert via_other.body == direct.body and via_other.body["profile"]["title"] == f"Title {i}"
            assert (via_other.served_by, via_other.copy, via_other.forwarded_by) == (owner.url, "active", other.url)
            assert (direct.served_by, direct.copy, direct.forwarded_by) == (owner.url, "active", None)

        # Jobs are a global table: a job posted on b's partition reaches a's copy, and
        # describes an apply a folds into the history of one of its own members.
        jid = next(j for j in (unique_name("j") for _ in range(100))
                   if java_partition(j.encode(), cluster[1]) in active[1])
        of_a = next(m for m in members if owner_of[m] == 0)
        with EventProducer(cluster[0]) as p:
            p.send(f.job_posted(unique_name("e"), 1, job_id=jid, title="Streaming Engineer"))
        a.wait_for(lambda: a.job(jid), 30, "the job in a's copy of the catalog")
        with EventProducer(cluster[0]) as p:
            p.send(f.action(unique_name("e"), "apply", 2, member_id=of_a, job_id=jid))
        applied = member_with(a, of_a, lambda v: v["counts"].get("apply") == 1, "the apply")
        assert applied["history"][0]["job"]["title"] == "Streaming Engineer"

        # The token still guards a read that would be forwarded, and an unknown member
        # is the owner's 404, forwarded as it is.
        of_b = next(m for m in members if owner_of[m] == 1)
        assert a.member_answer(of_b, token="").status == 401
        assert a.member_answer(of_b, token="wrong").status == 401
        unknown = next(m for m in (unique_name("m") for _ in range(100))
                       if java_partition(m.encode(), cluster[1]) in active[1])
        missing = a.member_answer(unknown)
        assert (missing.status, missing.served_by, missing.forwarded_by) == (404, b.url, a.url)
    finally:
        for w in (a, b):
            w.stop()


def members_with_their_own_jobs(cluster, active: list[set[int]], word: str) -> tuple[dict, dict]:
    """Eight new members, each with one job only their own words match; (member -> job,
    member -> index of the worker owning it in `active`). Each worker owns four."""
    uid = unique_name("u").replace("-", "")
    members = {mid: f"{word}{uid}x{i}" for i, mid in enumerate(members_owned_by_each(cluster[1], active, 4))}
    own_job = {mid: unique_name("j") for mid in members}
    with EventProducer(cluster[0]) as p:
        for mid, w in members.items():
            p.send(f.job_posted(unique_name("e"), 0, job_id=own_job[mid], title=f"Senior {w}",
                                occupation=w.lower(), skills=[w]))
            p.send(f.member_upserted(unique_name("e"), 0, member_id=mid, title=w, occupation=w.lower(), skills=[w]))
    owner_of = {mid: 0 if java_partition(mid.encode(), cluster[1]) in active[0] else 1 for mid in members}
    assert set(owner_of.values()) == {0, 1}, "all members on one worker's partitions"
    return own_job, owner_of


def members_owned_by_each(partitions: int, active: list[set[int]], n: int) -> list[str]:
    """n new member ids on each worker's partitions, alternating. Chosen, not drawn:
    eight random ids all land on one worker's half about once in 128 runs."""
    chosen: list[list[str]] = [[] for _ in active]
    while any(len(c) < n for c in chosen):
        mid = unique_name("m")
        owner = next(i for i, parts in enumerate(active) if java_partition(mid.encode(), partitions) in parts)
        if len(chosen[owner]) < n:
            chosen[owner].append(mid)
    return [mid for pair in zip(*chosen) for mid in pair]


def ranked_first(worker: WorkerProcess, mid: str, job_id: str):
    """The worker's /v1/rank answer once `job_id` comes first for `mid` (None before)."""
    try:
        got = worker.answer("/v1/rank", "POST", body={"member_id": mid, "k": 3}, base=worker.scoring_url)
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return None
    top = ((got.body or {}).get("items") or [{}])[0].get("job_id")
    return got if top == job_id else None


def ranked_on_each(workers, own_job: dict, owner_of: dict):
    """For each member with its own job: every worker's /v1/rank answer once that job
    comes first, and the index of the worker owning the member."""
    for mid, job_id in own_job.items():
        yield ([w.wait_for(lambda w=w: ranked_first(w, mid, job_id), 90, f"{mid} ranked from its state")
                for w in workers], owner_of[mid])


def test_every_scoring_worker_ranks_every_member_from_its_active_or_its_standby_copy(cluster, tmp_path):
    """Two `serve` workers in one group, each with a standby copy of the other's
    partitions: /v1/rank on either ranks every member from that member's state (the job
    only their words match first), the owner from its active copy, the other from its
    standby copy, and the header says which. (Before, the other answered 503.)"""
    a, b = start_pair(cluster, tmp_path, command="serve", serving_scorer="bm25")
    try:
        own_job, owner_of = members_with_their_own_jobs(cluster, wait_split([a, b], cluster[1], standbys=True),
                                                         "Glassblower")
        for got, owner in ranked_on_each((a, b), own_job, owner_of):
            assert (got[owner].status, got[owner].copy) == (200, "active")
            assert (got[1 - owner].status, got[1 - owner].copy) == (200, "standby")
    finally:
        for w in (a, b):
            w.stop()


def test_a_scoring_worker_without_a_copy_of_the_member_asks_the_owner(cluster, tmp_path):
    """No standby copies: each `serve` worker holds only its own members. /v1/rank on
    the other worker is answered by the owner (forwarded with the caller's token, the
    owner's active copy, and the forwarding worker named); a caller without the token is
    refused before anything is forwarded. (Before, the other worker answered 503.)
    The workers carry the token in their settings; `answer` sends it."""
    a, b = start_pair(cluster, tmp_path, command="serve", serving_scorer="bm25", standby_replicas=0, token=TOKEN)
    try:
        own_job, owner_of = members_with_their_own_jobs(cluster, wait_split([a, b], cluster[1], standbys=False),
                                                         "Lampwright")
        for got, owner in ranked_on_each((a, b), own_job, owner_of):
            other = (a, b)[1 - owner]
            assert (got[owner].status, got[owner].copy, got[owner].forwarded_by) == (200, "active", None)
            assert (got[1 - owner].status, got[1 - owner].copy, got[1 - owner].forwarded_by) == \
                (200, "active", other.url)
        stranger = next(m for m in own_job if owner_of[m] == 0)
        refused = b.answer("/v1/rank", "POST", token="wrong", body={"member_id": stranger, "k": 3},
                           base=b.scoring_url)
        assert refused.status == 401 and refused.forwarded_by is None
    finally:
        for w in (a, b):
            w.stop()


def test_a_crashed_workers_partitions_fail_over_to_the_other_worker(cluster, tmp_path):
    """Two workers share the group, each with a standby copy of the other's partitions.
    The victim never commits on its own (an hour's commit interval), so what it applied
    is read again by whoever takes its partitions over. It is SIGKILLed; until the group
    notices, the survivor answers the victim's members from its standby copy; then it
    takes the partitions over while events stream on, and every member's counts end
    exactly as produced: nothing lost, nothing applied twice."""
    bootstrap, partitions = cluster
    survivor, victim = start_pair(cluster, tmp_path, second=dict(commit_interval=3600))
    try:
        wait_split([survivor, victim], partitions, standbys=True)
        members = [unique_name("m") for _ in range(24)]
        starts = source_offsets(bootstrap, app_id=None, partitions=set(range(partitions)))  # where ours begin
        produce_views(bootstrap, members, range(0, 30))
        for mid in members:  # read through the survivor: the victim's members forwarded to it
            member_with(survivor, mid, lambda v: v["counts"].get("view") == 30, f"{mid}'s first views applied")

        def standby_current():
            """The victim's share as the group holds it now (a loaded machine can
            rebalance), once the survivor's standby copy of it has caught up."""
            shares = split_now([survivor, victim], partitions, standbys=True)
            held = shares[1] if shares else set()
            victims = [m for m in members if java_partition(m.encode(), partitions) in held]
            if not victims:
                return None
            got = survivor.member_answer(victims[0], local=True)
            current = got.status == 200 and got.copy == "standby" and got.body["counts"].get("view") == 30
            return (held, victims) if current else None
        held, victims = survivor.wait_for(standby_current, 60, "the survivor's standby copy of the victim's "
                                                              "members, current")
        ends = source_offsets(bootstrap, app_id=None, partitions=held)
        committed = source_offsets(bootstrap, app_id=victim.settings["app_id"], partitions=held)

        victim.crash()
        # The group notices only after the session timeout (10 s): until then the
        # partitions are still the victim's, and the survivor answers from its standby.
        standby = survivor.wait_for(lambda: (got := survivor.member_answer(victims[0])).status == 200 and got,
                                    3, "the survivor's standby copy of a victim's member")
        assert (standby.served_by, standby.copy, standby.forwarded_by) == (survivor.url, "standby", None)
        assert standby.body["counts"]["view"] == 30

        produce_views(bootstrap, members, range(30, 60))  # streaming on through the failover
        assert_exact_view_counts(survivor, members, 60, "on the survivor")
        assert (survivor.debug_tasks() or {}).get("member_state_active") == list(range(partitions))
        now = survivor.member_answer(victims[0])
        assert (now.status, now.served_by, now.copy) == (200, survivor.url, "active")
        # Every view above the victim applied past its last commit came to the survivor
        # again and was recognised as applied: all of them on its partitions, unless a
        # rebalance before the crash made the victim commit some.
        reread = sum(max(0, ends[p] - max(starts[p], committed.get(p, 0))) for p in held)
        duplicates = (survivor.stats() or {})["duplicates"].get("member-actions", 0)
        assert duplicates >= reread, (duplicates, reread, starts, ends, committed)
    finally:
        victim.crash()
        survivor.stop()


def source_offsets(bootstrap: str, app_id: str | None, partitions: set[int]) -> dict[int, int]:
    """Per `member-actions` partition: the group's committed offset (`app_id`; absent
    when none), or the end of the log (`app_id` None)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    tps = [TopicPartition("member-actions", p) for p in sorted(partitions)]
    if app_id is None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(app_id)[app_id]
    finally:
        admin.close()
    return {tp.partition: offsets[tp].offset for tp in tps if tp in offsets and offsets[tp].offset >= 0}
