"""Two fixes to faust-streaming 0.15.3's consumer, for a worker that restarts with
changelogs to restore (a crash, a new disk, a rebalance). Applied once, by
`streams.app`, before the app is built.

What went wrong (seen as lost events in `tests/test_stream_worker.py`'s crash test,
about one run in five):

1. faust pauses partitions only in its own bookkeeping (`Consumer._active_partitions`);
   aiokafka keeps fetching every assigned partition. The fetch call runs on the
   consumer thread and was handed that *live* set. When recovery finished and paused
   the changelog partitions, the set became empty while a fetch was waiting, and
   aiokafka reads an empty set as "every partition": it drained source records, which
   faust then dropped as not active, with aiokafka's position already past them.
   Fix: the consumer thread gets a snapshot of the set taken when the fetch starts.

2. After recovery, faust resumed the source partitions *before* seeking them to their
   committed offsets, while the fetcher (already running for the changelogs) kept
   fetching. Source events delivered in between were handled, then the seek rewound
   the partitions and reset faust's read offsets while those events were still in
   flight, and faust's bookkeeping (read-offset filter, gap filling) then skipped
   events it had not delivered and acked them. Fix: seek first, then resume, so the
   first source event any agent sees is the first uncommitted one.
"""
from __future__ import annotations

from typing import Optional, Set

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    original_getmany = AIOKafkaConsumerThread.getmany

    async def getmany(self: AIOKafkaConsumerThread, active_partitions: Optional[Set[TP]], timeout: float):
        snapshot = frozenset(active_partitions) if active_partitions is not None else None
        return await original_getmany(self, snapshot, timeout)

    AIOKafkaConsumerThread.getmany = getmany  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]


async def _resume_streams(self: Recovery, generation_id: int = 0) -> None:
    """faust's `Recovery._resume_streams` with the seek moved before the resume."""
    app = self.app
    consumer = app.consumer
    await app.on_rebalance_complete.send()
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    else:
        self.log.info("Resuming streams with empty assignment")
    self.completed.set()
    self.log.info("Resuming flow...")
    app.flow_control.resume()
    consumer.resume_flow()
    await app._fetcher.maybe_start()  # type: ignore[attr-defined]
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")
