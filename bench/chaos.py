"""Chaos benchmark: is every event applied exactly once (or dead-lettered) while workers
and brokers fail under a running stream?

A three-node KRaft cluster on loopback (replication factor 3, min.insync.replicas 2,
`infra/cluster.py`) and two stream workers in one consumer group. A producer thread
streams a simulated marketplace (`streams.simulator`) at a steady rate, with a
malformed message every so often, for the whole run. Meanwhile the faults, a mix of:

- worker-kill        SIGKILL one worker; a supervisor restarts it on the same disk
- both-workers-kill  SIGKILL both workers; both restart
- failover           SIGKILL one worker and leave it down: the other takes over its
                     partitions (state restored from the changelogs); then it rejoins
- broker-kill        SIGKILL one broker of the three, and start it again
- dlq-refused        the `member-actions.dlq` topic refuses large records
                     (max.message.bytes) when a large malformed message arrives
                     mid-stream: its worker stops (exit 70) before committing over it;
                     the limit is restored and the worker restarted

Before each fault the system is steady (both workers hold partitions, every replica is
in sync, everything produced so far is committed). Time to recover is from the fault
to the moment every event produced before it is processed and committed, and one
produced after it on each `member-actions` partition too (the consumer group's
committed offsets pass the end offsets seen at the fault, plus one): the stream
flows end to end again. Polled on conditions, never slept.

At the end the stream stops, the workers catch up, and every event produced is
classified from what the system holds: the member-state changelog (each member's
latest state, what a rebuilt worker restores; also compared with the owning worker's
read API) and the `.dlq` topics (dead letters name their source partition and
offset). A member event (`member-actions`, `hires`) is

- applied once     its event id is exactly once in its member's history
- in a DLQ         not in any history, dead-lettered (by source partition and offset)
- lost             neither
- applied twice    more than once in a history, in another member's history, or
                   applied and dead-lettered too

A profile upsert (`members`) is applied when its member's profile equals it and the
member's state records its offset; applying it twice leaves the same state, so it
cannot be seen twice. A malformed message must be in its DLQ (lost otherwise; applied
twice if it reached any state). So that each event id can be counted, the stream
sends a member at most as many interactions as its history keeps (`history_max_items`,
30) and one profile upsert; the workers run with their default settings but for a
6 s session timeout and a 0.5 s commit interval (as the tests), and replication 3.

    .venv/bin/python bench/chaos.py                    # 50 faults
    .venv/bin/python bench/chaos.py --iterations 5     # one of each kind

Writes bench/out/chaos.json; worker and broker logs stay in bench/out/chaos-logs/.
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402
from infra import broker, cluster as kafka_cluster  # noqa: E402
from infra.waiting import wait_for  # noqa: E402
from infra.worker_process import WorkerProcess  # noqa: E402
from streams.delivery import EXIT_FATAL  # noqa: E402
from streams import kafka_clients  # noqa: E402
from streams.producer import make_producer  # noqa: E402
from streams.schemas import HireConfirmed, MemberActed, MemberUpserted, key_of, serialize, topic_of  # noqa: E402
from streams.simulator import Marketplace, MarketplaceConfig  # noqa: E402
from streams.topics import ALL_TOPICS, BY_NAME, Reader, dlq_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
FAULTS = ("worker-kill", "both-workers-kill", "failover", "broker-kill", "dlq-refused")
# What the stream worker consumes (the topic registry's readers): members,
# member-actions and hires into member-state; jobs and companies into the global tables.
WORKER_AGENTS = {Reader.MEMBER_AGENT, Reader.JOB_AGENT, Reader.COMPANY_AGENT}
SOURCE_TOPICS = tuple(t.name for t in ALL_TOPICS if t.readers & WORKER_AGENTS)
REFUSING_DLQ = dlq_name("member-actions")
REFUSED_LIMIT = 8 << 10  # the refusing DLQ's max.message.bytes: the stream's own dead letters fit
POISON_BYTES = 20_000  # a malformed message whose dead letter is over that limit
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588
SIGKILLED = -9


@dataclass(frozen=True)
class ChaosConfig:
    iterations: int = 50
    seed: int = 7
    rate: float = 80.0  # events/s the producer holds after the entities' first upserts
    malformed_every: int = 200  # one malformed message per this many events
    members: int = 0  # simulated members; 0: enough for the run at `rate`
    days: int = 7  # simulated days (~17 events per member on average)
    events_between: int = 150  # events streamed between one recovery and the next fault
    session_timeout: float = 6.0  # the workers' consumer-group session timeout
    fault_timeout: float = 300.0  # most seconds one recovery may take before the run fails
    faults: tuple[str, ...] = FAULTS  # the kinds to mix
    data_dir: Path | None = None  # brokers' and workers' files; None: a temporary directory

    @property
    def simulated_members(self) -> int:
        if self.members:
            return self.members
        # ~40 s of stream per fault, ~2.4 events per member and simulated day (fewer
        # past the cap on interactions), and room to spare: the stream must outlast the faults.
        events = self.rate * 40 * max(self.iterations, 3)
        return max(200, int(1.5 * events / min(self.days * 2.4, 0.6 * member_cap())))

    def rerun_command(self) -> str:
        args = ["--iterations", str(self.iterations)]
        for name, flag in (("seed", "--seed"), ("rate", "--rate"), ("malformed_every", "--malformed-every"),
                           ("members", "--members"), ("days", "--days")):
            if getattr(self, name) != getattr(ChaosConfig, name):
                args += [flag, str(getattr(self, name))]
        if self.faults != FAULTS:
            args += ["--faults", ",".join(self.faults)]
        return shlex.join([".venv/bin/python", "bench/chaos.py", *args])


def member_cap() -> int:
    """Interactions streamed per member at most: as many as a member's state keeps in its
    history (`history_max_items`, the workers' default), so every one can be counted."""
    from streams.settings import get_settings

    return get_settings().history_max_items


def fault_plan(iterations: int, seed: int, kinds: tuple[str, ...] = FAULTS) -> list[str]:
    """Every kind once per round, in a seeded order within each round."""
    rng = random.Random(f"chaos/{seed}")
    plan: list[str] = []
    while len(plan) < iterations:
        round_ = list(kinds)
        rng.shuffle(round_)
        plan += round_
    return plan[:iterations]


# --- what was produced -------------------------------------------------------------------

@dataclass
class Sent:
    """One message the stream produced, and where the broker put it."""

    kind: str  # "action", "hire", "upsert", "job", "company" or "malformed"
    topic: str
    member_id: str | None  # member events: whose state it must reach
    event_id: str | None
    detail: str = ""  # malformed: what is wrong with it; upsert: the profile's JSON; job, company: its id
    partition: int | None = None
    offset: int | None = None
    error: str | None = None  # the producer gave up on it (never expected: acks=all, idempotent retries)


class Ledger:
    """Every message produced, filled in by the producer's delivery callbacks."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def add(self, item: Sent) -> int:
        with self._lock:
            self.sent.append(item)
            return len(self.sent) - 1

    def delivered(self, i: int, metadata) -> None:
        self.sent[i].partition, self.sent[i].offset = metadata.partition, metadata.offset

    def failed(self, i: int, exc: BaseException) -> None:
        self.sent[i].error = repr(exc)

    def __len__(self) -> int:
        return len(self.sent)


def _member_of(event) -> str | None:
    return getattr(event.payload, "member_id", None)


class EventStream(threading.Thread):
    """Streams the simulated marketplace into the cluster for the whole run.

    The entities' first upserts (every company, job and member at the simulation's
    start) go flat out; from the first day on, events go at `rate` per second, with a
    malformed message after every `malformed_every`. Each member keeps one profile
    upsert (its first) and at most `member_cap` interactions, so that every one of
    them can be counted in its history."""

    MALFORMED = ("not JSON", "unknown event type", "key of another member", "no key",
                 "event time in 2100", "invalid UTF-8")

    def __init__(self, bootstrap: str, sim: MarketplaceConfig, rate: float, malformed_every: int,
                 member_cap: int, ledger: Ledger) -> None:
        super().__init__(name="chaos-stream", daemon=True)
        self.bootstrap, self.sim, self.rate = bootstrap, sim, rate
        self.malformed_every, self.member_cap, self.ledger = malformed_every, member_cap, ledger
        self.preloaded = threading.Event()  # the first upserts are all delivered
        self.exhausted = threading.Event()  # the simulation ran out before the run ended
        self.skipped = Counter()  # events left out (a member's later upserts, over its cap)
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._malformed = 0

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        if self.error is not None:
            raise RuntimeError("the event stream failed") from self.error

    def run(self) -> None:
        try:
            self._stream()
        except BaseException as err:  # reported by stop(): the run is invalid without its stream
            self.error = err
            self.preloaded.set()

    def _stream(self) -> None:
        producer = make_producer(self.bootstrap, linger_ms=5)
        upserted: set[str] = set()
        interactions: Counter = Counter()
        start = self.sim.start
        paced_from: float | None = None
        paced = 0
        try:
            for event in Marketplace(self.sim).events():
                if self._stopping.is_set():
                    return
                if paced_from is None and event.event_time != start:
                    producer.flush()  # every entity upsert delivered: offsets known
                    self.preloaded.set()
                    paced_from = time.monotonic()
                member = _member_of(event)
                if isinstance(event, MemberUpserted):
                    if member in upserted:
                        self.skipped["later profile upsert"] += 1
                        continue
                    upserted.add(member)
                elif isinstance(event, (MemberActed, HireConfirmed)):
                    if interactions[member] >= self.member_cap:
                        self.skipped["over the member cap"] += 1
                        continue
                    interactions[member] += 1
                if paced_from is not None:
                    paced += 1
                    ahead = paced / self.rate - (time.monotonic() - paced_from)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing the producer, not synchronizing with anything
                self._send(producer, event)
                if paced and paced % self.malformed_every == 0 and isinstance(event, MemberActed):
                    self._send_malformed(producer, event)
            self.exhausted.set()
        finally:
            producer.flush()
            producer.close()

    def _send(self, producer, event) -> None:
        kind = {MemberActed: "action", HireConfirmed: "hire", MemberUpserted: "upsert"}.get(type(event))
        kind = kind or ("company" if event.type.startswith("company") else "job")
        key = key_of(event)
        detail = event.payload.model_dump_json() if kind == "upsert" else key if kind in ("job", "company") else ""
        i = self.ledger.add(Sent(kind, topic_of(event), _member_of(event), event.event_id, detail))
        self._track(producer.send(topic_of(event), key=key.encode(), value=serialize(event)), i)

    def _send_malformed(self, producer, event: MemberActed) -> None:
        """A message the worker must dead-letter, made from a real action: the member's
        own key and partition (mostly), so it sits among that member's valid events."""
        what = self.MALFORMED[self._malformed % len(self.MALFORMED)]
        self._malformed += 1
        event_id = f"bad-{self._malformed}"
        member = event.payload.member_id
        envelope = json.loads(serialize(event))
        envelope["event_id"] = event_id
        key: bytes | None = member.encode()
        topic = "member-actions"
        if what == "not JSON":
            value = serialize(event)[:-7]  # cut short
        elif what == "unknown event type":
            value = json.dumps({**envelope, "type": "member.teleported"}).encode()
        elif what == "key of another member":
            value, key = json.dumps(envelope).encode(), f"not-{member}".encode()
        elif what == "no key":
            value, key = json.dumps(envelope).encode(), None
        elif what == "event time in 2100":
            value = json.dumps({**envelope, "event_time": "2100-01-01T00:00:00Z"}).encode()
        else:  # invalid UTF-8, on the members topic
            topic, value = "members", b'{"schema": "hirestream.v1", "event_id": "\xff\xfe"}'
        i = self.ledger.add(Sent("malformed", topic, member, event_id, what))
        self._track(producer.send(topic, key=key, value=value), i)

    def send_poison(self, member: str) -> Sent:
        """The dlq-refused fault's message: not JSON, and too big for the refusing DLQ."""
        producer = make_producer(self.bootstrap)
        try:
            value = b'{"poison": "' + b"x" * POISON_BYTES
            i = self.ledger.add(Sent("malformed", "member-actions", member, None, "too big for the refusing DLQ"))
            self._track(producer.send("member-actions", key=member.encode(), value=value), i)
            producer.flush()
        finally:
            producer.close()
        return self.ledger.sent[i]

    def _track(self, future, i: int) -> None:
        future.add_callback(lambda metadata: self.ledger.delivered(i, metadata))
        future.add_errback(lambda exc: self.ledger.failed(i, exc))


# --- where the consumer group stands -----------------------------------------------------

class GroupProgress:
    """The workers' consumer group: committed offsets against the topics' end offsets."""

    def __init__(self, bootstrap: str, group: str, partitions: int) -> None:
        from kafka import TopicPartition

        self.bootstrap, self.group = bootstrap, group
        self.tps = [TopicPartition(t, p) for t in SOURCE_TOPICS
                    for p in range(BY_NAME[t].partition_count(partitions))]
        self._admin = None
        self._consumer = None

    def _clients(self):
        if self._admin is None:
            self._admin = kafka_clients.admin(self.bootstrap, client_id="chaos-progress", request_timeout_ms=5000)
            self._consumer = kafka_clients.consumer(self.bootstrap, group_id=None,
                                                    client_id="chaos-progress", request_timeout_ms=5000)
        return self._admin, self._consumer

    def _reset(self) -> None:
        for client in (self._admin, self._consumer):
            try:
                if client is not None:
                    client.close()
            except Exception:  # a client of a failed broker: we only want it gone
                pass
        self._admin = self._consumer = None

    def end_offsets(self) -> dict:
        """The end offset of every source partition (retried through a broker failure)."""
        def probe():
            try:
                return self._clients()[1].end_offsets(self.tps)
            except Exception:
                self._reset()
                raise
        return wait_for(probe, 120, "the source topics' end offsets", interval=0.25, ignore=(Exception,))

    def committed(self) -> dict | None:
        """The group's committed offsets (0 where none), or None while they cannot be read."""
        try:
            found = self._clients()[0].list_group_offsets(self.group).get(self.group, {})
        except Exception:
            self._reset()
            return None
        return {tp: (found[tp].offset if tp in found and found[tp].offset >= 0 else 0) for tp in self.tps}

    def caught_up(self, target: dict) -> bool:
        committed = self.committed()
        return committed is not None and all(committed[tp] >= target[tp] for tp in self.tps)

    def behind(self, target: dict) -> dict[str, int]:
        committed = self.committed() or {}
        return {f"{tp.topic}-{tp.partition}": target[tp] - committed.get(tp, 0)
                for tp in self.tps if committed.get(tp, 0) < target[tp]}

    def close(self) -> None:
        self._reset()


# --- the workers and their supervisor ------------------------------------------------------

class Workers:
    """Two workers in one consumer group, and the supervisor that restarts a stopped one."""

    def __init__(self, bootstrap: str, data_dir: Path, app_id: str, config: ChaosConfig) -> None:
        settings = dict(
            app_id=app_id, replication_factor=kafka_cluster.REPLICATION_FACTOR,
            broker_session_timeout=config.session_timeout, broker_heartbeat_interval=config.session_timeout / 3,
            commit_interval=0.5,
        )
        ports = broker.free_ports(2)
        self.all = [WorkerProcess(bootstrap, data_dir / name, port, loglevel="info", **settings)
                    for name, port in zip(("worker-a", "worker-b"), ports)]
        self.exits: list[dict] = []  # every exit: which worker, its code, whether a fault meant it

    def start(self, timeout: float = 120.0) -> None:
        for w in self.all:
            w.start()
        for w in self.all:
            w.wait_ready(timeout)

    def crash(self, w: WorkerProcess, iteration: int) -> None:
        w.crash()
        self.exits.append({"worker": w.data_dir.name, "code": w.proc.returncode, "iteration": iteration,
                           "expected": True})

    def restart_stopped(self, iteration: int, expected_codes: tuple[int, ...] = ()) -> list[str]:
        """The supervisor: start every worker that is not running; say which."""
        restarted = []
        for w in self.all:
            if w.proc is not None and w.proc.poll() is None:
                continue
            code = w.proc.returncode if w.proc is not None else None
            if code is not None and code != SIGKILLED:  # our own SIGKILLs are logged by crash()
                self.exits.append({"worker": w.data_dir.name, "code": code, "iteration": iteration,
                                   "expected": code in expected_codes,
                                   "log_tail": "" if code in expected_codes else w.log_tail(3000)})
            w.start()
            restarted.append(w.data_dir.name)
        return restarted

    @staticmethod
    def held(w: WorkerProcess) -> set[str] | None:
        """The source partitions `w` holds, or None while it does not answer."""
        state = w.debug_tasks() if w.alive else None
        if state is None:
            return None
        return {name for name in (state.get("offsets") or {})
                if name.rpartition("-")[0] in SOURCE_TOPICS}  # not faust's own topics

    def assignments(self) -> list[set[str]] | None:
        """Each worker's source partitions, or None while one does not answer."""
        found = [self.held(w) for w in self.all]
        return None if any(h is None for h in found) else found

    def stop(self) -> None:
        """Both at once (each commits and flushes on SIGTERM)."""
        stoppers = [threading.Thread(target=w.stop) for w in self.all]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()


# --- one run ------------------------------------------------------------------------------

@dataclass
class Recovery:
    iteration: int
    fault: str
    target: str  # which worker or broker
    seconds: float  # fault -> everything before it, and one event after it per member-actions partition, committed
    note: str = ""
    at: str = ""  # wall-clock time of the fault, to find it in the worker and broker logs


@dataclass
class ChaosResult:
    config: dict
    counts: dict[str, dict[str, int]]  # kind -> outcome -> events
    recoveries: list[Recovery]
    global_tables: dict[str, dict[str, int]]
    state_checks: dict[str, int]
    worker_exits: list[dict]
    anomalies: list[str]
    skipped: dict[str, int]
    timings: dict[str, float]
    cpu: str
    rerun: str

    @property
    def lost(self) -> int:
        return sum(c["lost"] for c in self.counts.values())

    @property
    def twice(self) -> int:
        return sum(c["applied twice"] for c in self.counts.values())

    def to_json(self) -> dict:
        out = asdict(self)
        out["lost"], out["applied_twice"] = self.lost, self.twice
        out["recovery_s"] = recovery_summary(self.recoveries)
        return out


class Chaos:
    def __init__(self, config: ChaosConfig, cluster: kafka_cluster.ClusterConfig, data_dir: Path,
                 log=print) -> None:
        from streams.settings import get_settings

        self.config, self.cluster, self.log = config, cluster, log
        self.partitions = get_settings().member_partitions
        self.app_id = f"hs-chaos-{uuid.uuid4().hex[:8]}"
        self.ledger = Ledger()
        sim = MarketplaceConfig(seed=config.seed, n_members=config.simulated_members,
                                n_jobs=config.simulated_members, n_companies=max(5, config.simulated_members // 20),
                                days=config.days)
        self.stream = EventStream(cluster.bootstrap, sim, config.rate, config.malformed_every,
                                  member_cap=member_cap(), ledger=self.ledger)
        self.workers = Workers(cluster.bootstrap, data_dir, self.app_id, config)
        self.progress = GroupProgress(cluster.bootstrap, self.app_id, self.partitions)
        self.recoveries: list[Recovery] = []
        self.anomalies: list[str] = []
        self.timings: dict[str, float] = {}
        self._next_broker = 0

    # -- the run
    def run(self) -> None:
        t = time.monotonic()
        self.workers.start()
        self.timings["workers_start_s"] = time.monotonic() - t
        t = time.monotonic()
        self.stream.start()
        if not self.stream.preloaded.wait(600) or self.stream.error:
            raise RuntimeError(f"the entities' first upserts were not delivered: {self.stream.error!r}")
        self.timings["preload_s"] = time.monotonic() - t
        for i, fault in enumerate(fault_plan(self.config.iterations, self.config.seed, self.config.faults), start=1):
            self._steady(i)
            if self.stream.exhausted.is_set():
                self.anomalies.append(f"the simulation ran out before fault {i}: raise --members")
            t, at = time.monotonic(), time.strftime("%H:%M:%S")
            recovery = getattr(self, "_" + fault.replace("-", "_"))(i)
            recovery.at = at
            self.recoveries.append(recovery)
            self.log(f"{at} [{i}/{self.config.iterations}] {fault} ({recovery.target}): recovered in "
                     f"{recovery.seconds:.1f} s{'; ' + recovery.note if recovery.note else ''} "
                     f"[{time.monotonic() - t:.0f} s with its side effects; {len(self.ledger):,} messages so far]")

    def finish(self) -> None:
        """Stop the stream, wait until the workers have committed all of it."""
        self.stream.stop()
        self._steady(self.config.iterations + 1, new_events=0)

    # -- conditions
    def _wait_recovered(self, t0: float, target: dict, what: str) -> float:
        slow = [30.0]  # past this many seconds, say where it waits (and again every 30 s)

        def recovered() -> bool:
            if self.progress.caught_up(target):
                return True
            if time.monotonic() - t0 > slow[0]:
                slow[0] += 30
                self._say_where_it_waits(target, f"{what}: {time.monotonic() - t0:.0f} s")
            return False
        try:
            wait_for(recovered, self.config.fault_timeout, what, interval=0.2)
        except TimeoutError as err:
            states = "\n".join(f"{w.data_dir.name} alive={w.alive}\n{w.log_tail(3000)}\n{w.debug_state()}"
                               for w in self.workers.all)
            raise TimeoutError(f"{err}; behind: {self.progress.behind(target)}\n{states}") from None
        return time.monotonic() - t0

    def _say_where_it_waits(self, target: dict, what: str) -> None:
        """Log the partitions still behind, and keep each worker's /debug/tasks/ with the logs."""
        self.log(f"{time.strftime('%H:%M:%S')} still waiting for {what}; behind: {self.progress.behind(target)}")
        for w in self.workers.all:
            path = w.data_dir / f"debug-tasks-{time.strftime('%H%M%S')}.txt"
            path.write_text(w.debug_state() if w.alive else f"not running (exit {w.proc.returncode})")

    def _steady(self, iteration: int, new_events: int | None = None) -> None:
        """Before a fault: `events_between` more events streamed, both workers up and
        holding partitions, every replica in sync, and everything produced committed."""
        new_events = self.config.events_between if new_events is None else new_events
        floor = len(self.ledger) + new_events
        wait_for(lambda: len(self.ledger) >= floor or self.stream.exhausted.is_set()
                 or not self.stream.is_alive(), 600, f"{new_events} more events streamed", interval=0.1)
        kafka_cluster.wait_until_healthy(self.cluster, self.config.fault_timeout)
        restarted = self.workers.restart_stopped(iteration)
        if restarted:
            self.anomalies.append(f"before fault {iteration}: {', '.join(restarted)} had stopped; restarted")
        every = {f"{tp.topic}-{tp.partition}" for tp in self.progress.tps}

        def balanced() -> bool:
            held = self.workers.assignments()
            return held is not None and all(held) and set.union(*held) == every and not set.intersection(*held)
        wait_for(balanced, self.config.fault_timeout, "both workers holding their share of the partitions",
                 interval=0.25)
        target = self.progress.end_offsets()
        self._wait_recovered(time.monotonic(), target, "the workers to commit everything produced")

    def _target(self) -> dict:
        """What recovery from a fault injected now means: every event produced so far
        committed, and on each `member-actions` partition (the busy ones) one produced
        after it too, so that the stream is seen flowing end to end again (a broker's
        death stalls new writes to its partitions, not the ones already replicated)."""
        target = self.progress.end_offsets()
        if self.stream.is_alive() and not self.stream.exhausted.is_set():
            target = {tp: n + (tp.topic == "member-actions") for tp, n in target.items()}
        return target

    # -- the faults; each returns once it is recovered from (`_target`)
    def _worker_kill(self, i: int) -> Recovery:
        victim = self.workers.all[i % 2]
        target = self._target()
        t0 = time.monotonic()
        self.workers.crash(victim, i)
        victim.start()  # the supervisor, at once
        return Recovery(i, "worker-kill", victim.data_dir.name, self._wait_recovered(t0, target, "recovery"))

    def _both_workers_kill(self, i: int) -> Recovery:
        target = self._target()
        t0 = time.monotonic()
        for w in self.workers.all:
            self.workers.crash(w, i)
        for w in self.workers.all:
            w.start()
        return Recovery(i, "both-workers-kill", "both", self._wait_recovered(t0, target, "recovery"))

    def _failover(self, i: int) -> Recovery:
        victim, survivor = self.workers.all[i % 2], self.workers.all[(i + 1) % 2]
        target = self._target()
        t0 = time.monotonic()
        self.workers.crash(victim, i)
        seconds = self._wait_recovered(t0, target, f"{survivor.data_dir.name} to take over")
        alone = len(self.workers.held(survivor) or ()) == len(self.progress.tps)
        victim.start()  # back into the group: the next steady wait covers its rebalance
        return Recovery(i, "failover", f"{victim.data_dir.name} -> {survivor.data_dir.name}", seconds,
                        "" if alone else "the survivor did not hold every partition when it had caught up")

    def _broker_kill(self, i: int) -> Recovery:
        index = self._next_broker
        self._next_broker = (index + 1) % len(self.cluster.nodes)
        node = self.cluster.nodes[index]
        target = self._target()
        t0 = time.monotonic()
        kafka_cluster.kill_node(self.cluster, index)
        broker.launch(node, cluster_id=self.cluster.cluster_id)  # restarted at once; answers in seconds
        seconds = self._wait_recovered(t0, target, f"recovery from broker {node.node_id}'s death")
        return Recovery(i, "broker-kill", f"broker {node.node_id}", seconds)

    def _dlq_refused(self, i: int) -> Recovery:
        admin = kafka_clients.admin(self.cluster.bootstrap, client_id="chaos-admin")
        try:
            set_max_message_bytes(admin, REFUSING_DLQ, REFUSED_LIMIT)
            member = next(s.member_id for s in reversed(self.ledger.sent) if s.kind == "action")
            t0 = time.monotonic()
            poison = self.stream.send_poison(member)
            target = self._target()
            try:
                stopped = wait_for(lambda: [w for w in self.workers.all if not w.alive], 120,
                                   "a worker to stop on the refused dead letter", interval=0.1)
                note = ", ".join(f"{w.data_dir.name} exit {w.proc.returncode}" for w in stopped)
                if any(w.proc.returncode != EXIT_FATAL for w in stopped):
                    self.anomalies.append(f"fault {i}: a worker stopped on the refused dead letter with "
                                          f"an exit code other than {EXIT_FATAL}: {note}")
            except TimeoutError:
                note = "no worker stopped: the dead letter was not refused"
                self.anomalies.append(f"fault {i}: {note}")
        finally:  # the operator's fix, at once
            set_max_message_bytes(admin, REFUSING_DLQ, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
            admin.close()
        self.workers.restart_stopped(i, expected_codes=(EXIT_FATAL,))
        seconds = self._wait_recovered(t0, target, "recovery from the refused dead letter")
        return Recovery(i, "dlq-refused", f"member-actions-{poison.partition}", seconds, note)

    # -- after the run
    def audit(self) -> tuple[dict, dict, dict]:
        """(counts per kind and outcome, global tables' convergence, state checks)."""
        members = read_changelog(self.cluster.bootstrap, f"{self.app_id}-member-state-changelog")
        jobs = read_changelog(self.cluster.bootstrap, f"{self.app_id}-job-catalog-changelog")
        companies = read_changelog(self.cluster.bootstrap, f"{self.app_id}-companies-changelog")
        dead = read_dead_letters(self.cluster.bootstrap)
        state_checks = self._compare_with_workers(members)
        return classify(self.ledger.sent, members, dead), converged(self.ledger.sent, jobs, companies), state_checks

    def _compare_with_workers(self, members: dict[str, dict]) -> dict[str, int]:
        """Each member's state from the worker that owns its partition (read API) against
        the changelog's latest record: what a rebuilt worker would restore."""
        from kafka.partitioner import murmur2

        owners: dict[int, WorkerProcess] = {}
        for w, held in zip(self.workers.all, self.workers.assignments() or []):
            for name in held:
                topic, _, p = name.rpartition("-")
                if topic == "member-actions":
                    owners[int(p)] = w
        equal = differ = 0
        for member_id, value in members.items():
            owner = owners.get((murmur2(member_id.encode()) & 0x7FFFFFFF) % self.partitions)
            served = owner.member_answer(member_id, local=True) if owner is not None else None
            if served is not None and served.status == 200 and served.copy == "active" and served.body == value:
                equal += 1
            else:
                differ += 1
                if differ <= 5:
                    self.anomalies.append(f"member {member_id}: the owning worker serves a state other "
                                          "than the changelog's latest")
        return {"members in the changelog": len(members), "equal to the owning worker's state": equal,
                "different": differ}

    def result(self, counts, tables, state_checks, wall: float) -> ChaosResult:
        for e in self.workers.exits:
            if not e["expected"]:
                self.anomalies.append(f"{e['worker']} exited {e['code']} unexpectedly before fault "
                                      f"{e['iteration']}:\n{e.get('log_tail', '')[-1500:]}")
        self.timings["wall_s"] = wall
        return ChaosResult(
            config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()}
            | {"simulated_members": self.config.simulated_members, "partitions": self.partitions,
               "brokers": len(self.cluster.nodes), "replication_factor": kafka_cluster.REPLICATION_FACTOR,
               "min_insync_replicas": kafka_cluster.MIN_INSYNC_REPLICAS, "workers": len(self.workers.all)},
            counts=counts, recoveries=self.recoveries, global_tables=tables, state_checks=state_checks,
            worker_exits=self.workers.exits, anomalies=self.anomalies, skipped=dict(self.stream.skipped),
            timings=self.timings, cpu=cpu_name(), rerun=self.config.rerun_command(),
        )

    def close(self) -> None:
        try:
            self.stream._stopping.set()
            self.workers.stop()
        finally:
            self.progress.close()


def set_max_message_bytes(admin, topic: str, limit: int) -> None:
    """Set a topic's max.message.bytes and wait until *every* broker reports it.

    Each broker applies a config change when it replays the metadata log, some
    milliseconds apart; a plain describe_configs asks whichever broker is least loaded.
    The dead letter goes to its partition's leader, so one broker saying "applied" is
    not enough: once, under CI's load, the leader still took the oversized dead letter
    and no worker stopped (`issues ci`, 2026-12-04)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})
    admin.alter_configs([resource])
    brokers = [b["broker_id"] for b in admin.describe_cluster()["brokers"]]

    def applied() -> bool:
        return all(_topic_config_on(admin, node, topic).get("max.message.bytes") == str(limit) for node in brokers)
    wait_for(applied, 60, f"{topic}'s max.message.bytes = {limit} on brokers {brokers}", interval=0.1)


def _topic_config_on(admin, node_id: int, topic: str) -> dict[str, str]:
    """One broker's own view of a topic's configs. kafka-python's public
    describe_configs cannot name the broker for a topic, so its request goes through
    the admin client's connection manager to `node_id` (kafka-python 3.0's internals)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    request = admin._describe_configs_request([ConfigResource(ConfigResourceType.TOPIC, topic)], False)

    async def ask():
        return await admin._manager.send(request, node_id=node_id)
    response = admin._manager.run(ask)
    return broker._described_topic_configs(admin._describe_configs_process_responses([response]), topic)


# --- reading what the system holds ---------------------------------------------------------

def _read_topic(bootstrap: str, topic: str):
    """Every record of `topic`, from the beginning to the end offsets seen at the start."""
    from kafka import TopicPartition

    consumer = kafka_clients.consumer(bootstrap, group_id=None, enable_auto_commit=False,
                                      max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + 600
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over 600 s")
            for records in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for r in records:
                    if r.offset < end[TopicPartition(r.topic, r.partition)]:
                        yield r
    finally:
        consumer.close()


def read_changelog(bootstrap: str, topic: str) -> dict[str, dict]:
    """A table as its changelog holds it: each key's latest value (what a worker on an
    empty disk restores)."""
    latest: dict[bytes, bytes | None] = {}
    for r in _read_topic(bootstrap, topic):
        latest[r.key] = r.value
    return {json.loads(k): json.loads(v) for k, v in latest.items() if v is not None}


def read_dead_letters(bootstrap: str) -> Counter:
    """(source topic, partition, offset) -> how many dead letters name it."""
    found: Counter = Counter()
    for source in SOURCE_TOPICS:
        for r in _read_topic(bootstrap, dlq_name(source)):
            h = {k: v.decode() for k, v in r.headers}
            found[(h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))] += 1
    return found


OUTCOMES = ("produced", "applied once", "in DLQ", "lost", "applied twice", "dead-lettered twice")


def classify(sent: list[Sent], members: dict[str, dict], dead: Counter) -> dict[str, dict[str, int]]:
    """Every member-keyed and malformed message produced -> its outcome (module docstring)."""
    applied: Counter = Counter()  # (member, event id) -> times in the member's history
    anywhere: Counter = Counter()  # event id -> times in any history
    for member_id, state in members.items():
        for item in state.get("history", ()):
            applied[(member_id, item["event_id"])] += 1
            anywhere[item["event_id"]] += 1
    counts = {kind: dict.fromkeys(OUTCOMES, 0) for kind in ("action", "hire", "upsert", "malformed")}
    for s in sent:
        if s.kind not in counts:
            continue
        c = counts[s.kind]
        if s.error is not None or s.offset is None:
            c.setdefault("not delivered by the producer", 0)
            c["not delivered by the producer"] += 1
            continue
        c["produced"] += 1
        letters = dead[(s.topic, s.partition, s.offset)]
        if s.kind == "upsert":
            state = members.get(s.member_id) or {}
            times = int(state.get("profile") == json.loads(s.detail)
                        and state.get("applied_offsets", {}).get(f"{s.topic}:{s.partition}") == s.offset)
        elif s.kind == "malformed":
            times = anywhere[s.event_id] if s.event_id else 0  # it must reach no state at all
        else:
            times = applied[(s.member_id, s.event_id)]
            if anywhere[s.event_id] > times:  # in another member's state: applied where it must not be
                times += anywhere[s.event_id] - times + 1
        if s.kind == "malformed":
            outcome = "applied twice" if times else ("in DLQ" if letters else "lost")
        elif times == 1 and not letters:
            outcome = "applied once"
        elif times == 0:
            outcome = "in DLQ" if letters else "lost"
        else:
            outcome = "applied twice"
        c[outcome] += 1
        if letters > 1:
            c["dead-lettered twice"] += 1
    return counts


def converged(sent: list[Sent], jobs: dict[str, dict], companies: dict[str, dict]) -> dict[str, dict[str, int]]:
    """The global tables: each job's and company's entry holds the latest event produced
    for it (events of one key share a partition, so the ledger's order is the log's)."""
    out = {}
    for name, kind, table in (("jobs", "job", jobs), ("companies", "company", companies)):
        latest = {s.detail: s.event_id for s in sent if s.kind == kind and s.offset is not None}
        holding = Counter("its latest event" if (table.get(key) or {}).get("event_id") == event_id
                          else "an older event" if key in table else "missing"
                          for key, event_id in latest.items())
        out[name] = {"produced for": len(latest), "holding its latest event": holding["its latest event"],
                     "holding an older event": holding["an older event"], "missing": holding["missing"]}
    return out


# --- report -----------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with few samples, p99 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def recovery_summary(recoveries: list[Recovery]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = {}
    for r in recoveries:
        groups.setdefault(r.fault, []).append(r.seconds)
    groups["all faults"] = [r.seconds for r in recoveries]
    return {k: {"n": len(v), "p50": statistics.median(v), "p99": percentile(v, 99), "max": max(v)}
            for k, v in groups.items() if v}


def print_report(result: ChaosResult, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 110)
    cfg = result.config
    console.print(f"CPU: {result.cpu}")
    console.print(f"{cfg['iterations']} faults, {cfg['brokers']} brokers (replication {cfg['replication_factor']}, "
                  f"min.insync.replicas {cfg['min_insync_replicas']}), {cfg['workers']} workers in one group, "
                  f"{cfg['partitions']} partitions per topic, stream at {cfg['rate']:g} events/s, "
                  f"{cfg['simulated_members']:,} simulated members")
    table = Table(title="Every message produced, by what became of it")
    table.add_column("messages")
    for name in OUTCOMES:
        table.add_column(name, justify="right")
    labels = {"action": "member-actions", "hire": "hires", "upsert": "members (profile upserts)*",
              "malformed": "malformed (-> .dlq)"}
    total = Counter()
    for kind, c in result.counts.items():
        table.add_row(labels[kind], *(f"{c[o]:,}" if not (kind == "upsert" and o == "applied twice") else "-"
                                     for o in OUTCOMES))
        total.update({o: c[o] for o in OUTCOMES})
    table.add_row("all", *(f"{total[o]:,}" for o in OUTCOMES), style="bold")
    console.print(table)
    console.print("* a profile upsert replaces the profile: applied again it leaves the same state, so it is "
                  "counted applied once when the member's state holds it and its offset. 'dead-lettered twice': "
                  "the same source offset in a DLQ twice (the dead letter is resent when its batch is "
                  "reprocessed after a crash; its headers name the source offset, so a reader can drop copies).")
    console.print(f"[bold]lost: {result.lost}   applied twice: {result.twice}[/bold]")

    rec = Table(title="Time to recover (s)")
    for col in ("fault", "n", "p50", "p99", "max"):
        rec.add_column(col, justify="left" if col == "fault" else "right")
    for kind, s in recovery_summary(result.recoveries).items():
        rec.add_row(kind, str(s["n"]), f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}",
                    style="bold" if kind == "all faults" else None)
    console.print(rec)
    console.print("from the fault until everything produced before it, and one event produced after it on each "
                  "member-actions partition, is processed and committed (so a broker's death counts until the "
                  "stream's own producer reaches the new leaders)")
    gt = Table(title="Global tables (latest event wins), from their changelogs")
    gt.add_column("table")
    for col in next(iter(result.global_tables.values())):
        gt.add_column(col, justify="right")
    for name, c in result.global_tables.items():
        gt.add_row(name, *(f"{v:,}" for v in c.values()))
    console.print(gt)
    console.print("Member states: " + ", ".join(f"{k} {v:,}" for k, v in result.state_checks.items()))
    if result.skipped:
        console.print("Left out of the stream: " + ", ".join(f"{k} {v:,}" for k, v in result.skipped.items()))
    exits = Counter((e["code"], e["expected"]) for e in result.worker_exits)
    console.print("Worker exits: " + ", ".join(f"code {code}{'' if ok else ' (UNEXPECTED)'} x{n}"
                                               for (code, ok), n in sorted(exits.items())))
    for line in result.anomalies:
        console.print(f"[bold red]anomaly:[/bold red] {line}")
    t = result.timings
    console.print(f"wall time {t['wall_s'] / 60:.1f} min (cluster start {t.get('cluster_start_s', 0):.0f} s, "
                  f"workers start {t.get('workers_start_s', 0):.0f} s, first upserts {t.get('preload_s', 0):.0f} s, "
                  f"audit {t.get('audit_s', 0):.0f} s)")
    console.print(f"rerun: {result.rerun}")


def run(config: ChaosConfig, log=print, logs_dir: Path | None = OUT / "chaos-logs") -> ChaosResult:
    """Start a cluster and two workers, inject the faults while the stream runs, audit."""
    started = time.monotonic()
    tmp = None
    data_dir = config.data_dir
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hs-chaos-")
        data_dir = Path(tmp.name)
    try:
        cluster = kafka_cluster.ClusterConfig.on_free_ports(data_dir / "kafka")
        t = time.monotonic()
        kafka_cluster.start_cluster(cluster)
        try:
            kafka_cluster.create_topics(cluster)
            cluster_start = time.monotonic() - t
            chaos = Chaos(config, cluster, data_dir, log=log)
            chaos.timings["cluster_start_s"] = cluster_start
            try:
                chaos.run()
                chaos.finish()
                t = time.monotonic()
                counts, tables, state_checks = chaos.audit()
                chaos.timings["audit_s"] = time.monotonic() - t
            finally:
                chaos.close()
                if logs_dir is not None:
                    _keep_logs(data_dir, logs_dir)
            return chaos.result(counts, tables, state_checks, time.monotonic() - started)
        finally:
            kafka_cluster.stop_cluster(cluster)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _keep_logs(data_dir: Path, logs: Path) -> None:
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    for path in [*data_dir.glob("worker-*/worker.log"), *data_dir.glob("worker-*/debug-tasks-*.txt"),
                 *data_dir.glob("kafka/node-*/server.log")]:
        shutil.copy(path, logs / f"{path.parent.name}-{path.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ChaosConfig()
    ap.add_argument("--iterations", type=int, default=defaults.iterations, help="faults to inject")
    ap.add_argument("--seed", type=int, default=defaults.seed, help="simulation and fault order")
    ap.add_argument("--rate", type=float, default=defaults.rate, help="events/s streamed during the faults")
    ap.add_argument("--malformed-every", type=int, default=defaults.malformed_every)
    ap.add_argument("--members", type=int, default=defaults.members, help="simulated members (0: sized to the run)")
    ap.add_argument("--days", type=int, default=defaults.days, help="simulated days")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"kinds to mix, of {', '.join(FAULTS)}")
    args = ap.parse_args()
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    if not faults or set(faults) - set(FAULTS):
        ap.error(f"--faults takes kinds of {', '.join(FAULTS)}")
    config = ChaosConfig(iterations=args.iterations, seed=args.seed, rate=args.rate,
                         malformed_every=args.malformed_every, members=args.members, days=args.days,
                         faults=faults)
    result = run(config)
    print_report(result)
    OUT.mkdir(exist_ok=True)
    (OUT / "chaos.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
    print(f"wrote {OUT / 'chaos.json'}")
    sys.exit(0 if result.lost == 0 and result.twice == 0 else 1)


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
