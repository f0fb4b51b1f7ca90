"""Every change hirestream makes to faust-streaming's own code, for exactly one version.

`apply()` runs once, from `streams.app`, before the app is built. It refuses to
start on another faust version, or if any function it replaces no longer has the
source these fixes were written against (a digest of each is kept below): a fix
silently applied to code it was not written for is how the old seek-before-resume
fix ended up on a path faust does not take.

The fixes (each found against faust-streaming 0.15.3 and aiokafka 0.14.0):

1. Fetch a snapshot of the active partitions. faust pauses partitions only in its
   own bookkeeping and hands the consumer thread its *live* set; when recovery
   paused the changelog partitions while a fetch waited, the set became empty, and
   aiokafka reads an empty set as "every partition": source records were drained,
   dropped as not active, and aiokafka's position was already past them.

2. Recovery seeks before it resumes, on the path faust takes *with* tables
   (`Recovery.on_recovery_completed`; `_resume_streams` runs only without tables).
   faust resumed the source partitions, then seeked them, then resumed flow control
   (which empties the agents' queues), while the fetcher kept running: events
   delivered in between were handled, rewound and then skipped by faust's read-offset
   bookkeeping and acked. Here the source partitions are paused in aiokafka itself
   (faust's own pause is bookkeeping only) while they are seeked to their committed
   offsets; then flow control resumes; then the partitions do. The first source event
   any agent sees is the first uncommitted one.

3. Idempotent producer. With retries and several requests in flight, a plain
   producer can reorder or duplicate a partition's records; a changelog needs the
   order tables wrote them in. (faust turns this on only for transactions.)

4. A failed produce blocks the commit. faust's `_on_published` only logs a failed
   send and its commit flushes and commits anyway. Every delivery future is watched
   (`streams.delivery`); the watch is checked between faust's flush and its commit,
   and a failure stops the worker first.

5. Changelog records for partitions this worker still holds are never dropped.
   faust empties its changelog queue whenever flow control resumes (several times per
   recovery, and whenever an agent starts), so standby and global-table copies
   skipped records the consumer had already fetched. The queue now drops only records
   of partitions that are no longer assigned, and never hands those on.

6. A group's assignment survives a changelog topic its metadata does not show yet.
   A new app id's workers create their changelog topics as they start; when the
   leader assigns before its metadata shows a global table's changelog (just
   created; likelier with more partitions and with several workers starting at
   once), faust's `_global_table_standby_assignments` raised KeyError, aiokafka
   dropped the join, and every worker of the group waited for ever with nothing
   assigned. Such a table is now left out of that one assignment, and the leader
   refreshes its metadata until it shows the topic: aiokafka then rejoins the group
   (its metadata snapshot changed), and the next assignment has the table. (Left to
   itself aiokafka refreshes metadata every `consumer_metadata_max_age_ms`, 5 min.)

7. A worker does not read back the global-table changelog partitions it writes.
   `streams/app.py` gives the global tables `recovery_buffer_size=1`, so that the
   records of partitions *other* workers write apply as they arrive; faust then also
   keeps resuming the table's partitions this worker writes itself once recovery is
   done (a branch of `Recovery._restart_recovery` for that buffer size), and the
   worker read back every record it had just written, one at a time, through the
   same fetch loop that hands source events to the agents. After a backlog (40,000
   events: 5,296 job-catalog records at once) every source event waited ~3 s behind
   them (bench/ingest.py: freshness p99 ~4 s against ~0.2 s before the change). Those
   partitions are paused again, as faust leaves them with its default buffer and as
   a `Table`'s writer never reads its own changelog; recovery still restores them
   whenever the worker is assigned them.

8. The producer tracks every topic it produces to. aiokafka's client asks for the
   metadata of every topic until it tracks one, then of the tracked topics only (and
   replaces what it knew with the answer), and its producer tracks a topic only when
   a send finds it missing. faust declares a topic before its first send, which
   refreshes the metadata of all topics, so a worker's changelogs and DLQs were known
   and never tracked. The first send to a topic the metadata did not show yet (a
   changelog another worker of a new app id had just created, before this broker's
   metadata showed it) made it the only tracked topic: the next refresh dropped every
   other topic, and a record still lingering for one of them waited for a leader
   until it expired (`producer_request_timeout`, 20 min), the commit's flush behind
   it. Seen once in CI's chaos run: every partition read, nothing committed for 5 min,
   the commit handler in `producer.flush()`. Now each topic is tracked from its first
   send, so every refresh keeps all of them.

9. A partition with no committed offset is rewound too. faust drops records it
   fetched at the wrong moment (flow stopped for a rebalance, a generation changed
   mid-batch, the agents' queues emptied as recovery ends) and relies on
   `perform_seek` -> `seek_to_committed` to read them again. aiokafka's
   `seek_to_committed` seeks only partitions whose committed offset is above 0, so
   a partition nothing was ever committed on kept its position past the dropped
   records. Seen in CI's chaos run: a hire, the first record of its partition,
   fetched during a rebalance and never applied (position 1, nothing read, nothing
   committed). Such partitions are now seeked to their earliest offset, as
   `auto_offset_reset="earliest"` would place a fresh consumer.
"""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from typing import Any, Callable, Mapping, Optional, Set

import faust
from aiokafka.structs import TopicPartition
from faust.assignor.partition_assignor import PartitionAssignor
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.types import TP
from mode.services import ServiceTask
from mode.utils.queues import ThrowableQueue

from streams.delivery import deliveries

FAUST_VERSION = "0.15.3"

# sha256 (first 16 hex digits) of the source of each faust function replaced here.
_ORIGINAL_SOURCE = {
    (AIOKafkaConsumerThread, "getmany"): "26fc5fc9f3b667e1",
    (Recovery, "on_recovery_completed"): "6ef567acf072e46d",
    (Producer, "_settings_extra"): "a4c7bc41b6382223",
    (Producer, "send"): "0b5bd08f52e5e2a9",
    (ThreadDelegateConsumer, "_commit"): "a20eec84e4b2ed50",
    (TableManager, "changelog_queue"): "9c7f4cac57ef1706",
    (PartitionAssignor, "_global_table_standby_assignments"): "b956f05703d92ce5",
    (AIOKafkaConsumerThread, "seek_to_committed"): "775ab0adc4b052ab",
    # Not replaced, but re-implemented by `streams.tables` (changelog records held for
    # the ordered hand-off): a change here must be carried over there.
    (Collection, "send_changelog"): "3dd3884e1b5fc0e1",
    # Not replaced either: fix 7 undoes what its recovery_buffer_size == 1 branch resumes.
    (Recovery, "_restart_recovery"): "6bd8a8558a2dffe4",
}

# The worker log says this once per recovery, so a test can see the fixed path ran.
RECOVERY_MARK = "hirestream recovery: source partitions paused in aiokafka and seeked"

# Fix 9 says this whenever it seeks partitions that aiokafka left where they were.
REWIND_MARK = "hirestream seek: partitions with no committed offset seeked to their earliest offset"

log = logging.getLogger(__name__)
_applied = False
_replaced: dict[tuple[type, str], Any] = {}  # faust's own functions, kept for the check


def _original(owner: type, name: str) -> Any:
    return _replaced.get((owner, name), owner.__dict__[name])


class FaustVersionMismatch(RuntimeError):
    pass


def _source_digest(obj: Any) -> str:
    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, ServiceTask):  # a `@Service.task` method
        obj = obj.fun
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def check_versions() -> None:
    """Raise unless faust and the functions these fixes replace are the ones they target."""
    if faust.__version__ != FAUST_VERSION:
        raise FaustVersionMismatch(
            f"streams.faust_fixes targets faust-streaming {FAUST_VERSION}, found {faust.__version__}: "
            "re-check every fix in streams/faust_fixes.py against the new version first")
    changed = [f"{owner.__name__}.{name}" for (owner, name), digest in _ORIGINAL_SOURCE.items()
               if _source_digest(_original(owner, name)) != digest]
    if changed:
        raise FaustVersionMismatch(f"faust functions changed under streams.faust_fixes: {', '.join(changed)}")


def apply() -> None:
    global _applied
    if _applied:
        return
    check_versions()
    _applied = True
    _wrap(AIOKafkaConsumerThread, "getmany", _fetch_a_snapshot)
    _replace(Recovery, "on_recovery_completed", on_recovery_completed)
    _wrap(Producer, "_settings_extra", _idempotent)
    _wrap(Producer, "send", lambda send: _watch_delivery(_track_every_topic(send)))
    _wrap(ThreadDelegateConsumer, "_commit", _commit_after_deliveries)
    _replace(TableManager, "changelog_queue", property(_changelog_queue))
    _replace(PartitionAssignor, "_global_table_standby_assignments", _global_table_standby_assignments)
    _wrap(AIOKafkaConsumerThread, "seek_to_committed", _rewind_never_committed)


def _replace(owner: type, name: str, new: Any) -> None:
    _replaced[(owner, name)] = owner.__dict__[name]
    setattr(owner, name, new)


def _wrap(owner: type, name: str, make: Callable[[Callable], Callable]) -> None:
    _replace(owner, name, make(owner.__dict__[name]))


# -- 1. the consumer thread fetches a snapshot of the active partitions
def _fetch_a_snapshot(original: Callable) -> Callable:
    async def getmany(self: AIOKafkaConsumerThread, active_partitions: Optional[Set[TP]], timeout: float):
        snapshot = frozenset(active_partitions) if active_partitions is not None else None
        return await original(self, snapshot, timeout)
    return getmany


# -- 9. a partition with no committed offset is rewound to its earliest one
def _rewind_never_committed(original: Callable) -> Callable:
    async def seek_to_committed(self: AIOKafkaConsumerThread) -> Mapping[TP, Optional[int]]:
        committed = await original(self)
        # aiokafka seeked only `offset and offset > 0`; the rest keep their position.
        # Changelog partitions are not the group's to seek: faust positions them itself
        # (recovery, standbys, global tables), from the tables' own offsets.
        changelogs = self.app.tables.changelog_topics
        unseeked = [tp for tp, offset in committed.items()
                    if (offset is None or offset <= 0) and tp.topic not in changelogs]
        if unseeked:
            await self.call_thread(_seek_to_earliest, self._ensure_consumer(), unseeked)
            log.info("%s: %d", REWIND_MARK, len(unseeked))
        return committed
    return seek_to_committed


async def _seek_to_earliest(consumer: Any, tps: list) -> None:
    earliest = await consumer.beginning_offsets(tps)
    assigned = consumer.assignment()  # a rebalance may have taken some while we asked
    for tp, offset in earliest.items():
        if tp in assigned:
            consumer.seek(tp, offset)


# -- 2. recovery seeks the source partitions while they are paused in aiokafka
async def on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    """faust's `Recovery.on_recovery_completed` with the seek done while the source
    partitions are paused in aiokafka, before flow control and the partitions resume."""
    app = self.app
    consumer = app.consumer
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [asyncio.ensure_future(table.on_recovery_completed(
        self.actives_for_table[table], self.standbys_for_table[table])) for table in self.tables.values()]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
        return
    sources = {tp for tp in assignment if not self._is_changelog_tp(tp)}
    own_changelogs = _pause_own_global_changelogs(self, consumer)
    if sources:
        await _pause_in_aiokafka(consumer, sources)
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        still_paused = await _paused_in_aiokafka(consumer)
        self.log.info("%s to committed offsets (%d partitions, paused during the seek: %s; "
                      "own global-table changelog partitions left paused: %d)", RECOVERY_MARK,
                      len(sources), sources <= still_paused,
                      len(own_changelogs - consumer._get_active_partitions()))
    self.completed.set()
    app.flow_control.resume()  # empties the agents' queues: nothing from before the seek survives
    consumer.resume_flow()
    consumer.resume_partitions(sources)
    if sources:
        await _resume_in_aiokafka(consumer, sources)
    await app._fetcher.maybe_start()  # type: ignore[attr-defined]
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


# -- 7. a worker does not read back the global-table changelog partitions it writes
def own_global_changelog_tps(recovery: Recovery) -> set[TP]:
    """The changelog partitions of a global table that this worker itself writes:
    "active" but not "standby" (`_global_table_standby_assignments`: a global table's
    standbys are its partitions other workers write). faust resumes these after
    recovery when the table's `recovery_buffer_size` is 1 (streams/app.py sets it, so
    that records of the *other* partitions apply as they arrive)."""
    return {tp for tp in recovery.active_tps - recovery.standby_tps
            if getattr(recovery.tp_to_table.get(tp), "is_global", False)}


def _pause_own_global_changelogs(recovery: Recovery, consumer: Any) -> set[TP]:
    """Keep a worker's own global-table changelog partitions paused once restored:
    every record there is one it has already written to its store (fix 7)."""
    own = own_global_changelog_tps(recovery)
    if own:
        consumer.pause_partitions(own)
    return own


def _aiokafka_tps(tps: Set[TP]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in tps]


# aiokafka's consumer lives on the consumer thread's loop: change it only from there.
async def _pause_in_aiokafka(consumer: Any, tps: Set[TP]) -> None:
    async def pause() -> None:
        consumer._thread._ensure_consumer().pause(*_aiokafka_tps(tps))
    await consumer._thread.call_thread(pause)


async def _resume_in_aiokafka(consumer: Any, tps: Set[TP]) -> None:
    async def resume() -> None:
        consumer._thread._ensure_consumer().resume(*_aiokafka_tps(tps))
    await consumer._thread.call_thread(resume)


async def _paused_in_aiokafka(consumer: Any) -> set[TP]:
    async def paused() -> set[TP]:
        return {TP(tp.topic, tp.partition) for tp in consumer._thread._ensure_consumer().paused()}
    return await consumer._thread.call_thread(paused)


# -- 3. an idempotent producer
def _idempotent(original: Callable) -> Callable:
    def _settings_extra(self: Producer) -> dict:
        return {**original(self), "acks": "all", "enable_idempotence": True}
    return _settings_extra


# -- 4. a failed produce blocks the commit (and 8. every topic produced to is tracked)
def _watch_delivery(original: Callable) -> Callable:
    async def send(self: Producer, topic: str, *args: Any, **kwargs: Any):
        fut = await original(self, topic, *args, **kwargs)
        deliveries.watch(fut, topic)
        return fut
    return send


def _track_every_topic(original: Callable) -> Callable:
    async def send(self: Producer, topic: str, *args: Any, **kwargs: Any):
        client = self._ensure_producer().client
        if topic not in client._topics:
            # Tracked before the record is queued: no refresh can drop the topic while
            # the record waits. (The refresh `add_topic` starts runs in the background.)
            client.add_topic(topic)
        return await original(self, topic, *args, **kwargs)
    return send


def _commit_after_deliveries(original: Callable) -> Callable:
    async def _commit(self: ThreadDelegateConsumer, offsets: Any) -> bool:
        # faust has just flushed the producer: every record handed to it before the
        # commit began has an outcome now. `before_commit` ends the worker on a failure.
        if not deliveries.before_commit():
            return False
        return await original(self, offsets)
    return _commit


# -- 5. the changelog queue keeps the records of partitions still assigned
class _ChangelogQueue(ThrowableQueue):
    """faust's changelog queue, emptied only of records this worker no longer reads."""

    def __init__(self, *args: Any, recovery: Recovery, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recovery = recovery

    def _assigned(self, event: Any) -> bool:
        tp = event.message.tp
        return tp in self._recovery.active_tps or tp in self._recovery.standby_tps

    def clear(self) -> None:
        kept = [event for event in self._queue if self._assigned(event)]  # type: ignore[attr-defined]
        self._queue.clear()  # type: ignore[attr-defined]
        self._queue.extend(kept)  # type: ignore[attr-defined]
        self._errors.clear()

    async def get(self) -> Any:
        while True:
            event = await super().get()
            if self._assigned(event):
                return event


def _changelog_queue(self: TableManager) -> ThrowableQueue:
    if self._changelog_queue is None:
        self._changelog_queue = _ChangelogQueue(
            maxsize=self.app.conf.stream_buffer_maxsize, flow_control=self.app.flow_control,
            clear_on_resume=True, recovery=self.recovery)
    return self._changelog_queue


# -- 6. the assignment leaves out a global table whose changelog is not in the metadata yet
def _global_table_standby_assignments(self: PartitionAssignor, assignments: Any,
                                      partitions_by_topic: Any) -> Any:
    """faust's, except for a global table whose changelog topic the cluster metadata
    does not show yet: left out of this assignment instead of a KeyError."""
    for table in self._table_manager.data.values():
        if not table.is_global:
            continue
        changelog_topic_name = table._changelog_topic_name()
        num_partitions = partitions_by_topic.get(changelog_topic_name)
        if num_partitions is None:
            log.warning("assignment without global table %s: its changelog %s is not in the metadata yet "
                        "(the group rejoins once it is)", table.name, changelog_topic_name)
            _refresh_metadata_until_shown(self.app, changelog_topic_name)
            continue
        all_partitions = set(range(0, num_partitions))
        for assignment in assignments.values():
            active_partitions = set(assignment.actives.get(changelog_topic_name, []))
            if table.synchronize_all_active_partitions or table.use_partitioner:
                standby_partitions = all_partitions
            else:
                standby_partitions = all_partitions - active_partitions
            assignment.standbys[changelog_topic_name] = list(standby_partitions)
            assignment.actives[changelog_topic_name] = list(all_partitions)
    return assignments


def _refresh_metadata_until_shown(app: Any, topic: str, tries: int = 120, every_s: float = 0.5) -> None:
    """From inside the assignment (aiokafka's coordinator, on the consumer thread's
    loop): refresh the consumer's metadata until it shows `topic`, in the background."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not inside a consumer (a unit test calling the assignor)
        return
    client = app.consumer._thread._ensure_consumer()._client

    async def refresh() -> None:
        for _ in range(tries):
            await client.force_metadata_update()
            if client.cluster.partitions_for_topic(topic):
                log.info("metadata shows %s now: the group rejoins", topic)
                return
            await asyncio.sleep(every_s)  # a retry interval while the broker's metadata catches up
        log.warning("metadata still without %s after %d refreshes", topic, tries)

    _refreshes.add(task := loop.create_task(refresh()))
    task.add_done_callback(_refreshes.discard)


_refreshes: set = set()  # running refresh tasks (asyncio keeps only weak references)

