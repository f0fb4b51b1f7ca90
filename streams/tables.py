"""faust tables whose changelog records are handed to Kafka, in order, before their
events are acked.

faust acks a batch when the agent body returns and commits acked offsets after
`producer.flush()`. A table change goes to its changelog through faust's send-soon
buffer, and in faust-streaming 0.15.3 the flush stops waiting on that buffer after
0.1 s without progress (`ProducerBuffer.flush_atmost`). On a loaded machine a commit
could then cover events whose changelog records were still queued, and a crash lost
them. (Kafka Streams flushes its producer fully before it commits; this restores
that order.)

So these tables keep their changelog records, and `streams.processing` awaits
`changelog_handed_off()` after each batch and before faust acks it: that hands the
records to the Kafka client, and the commit's flush then waits for their delivery
(a failed delivery stops the worker before the commit: `streams.delivery`).

The hand-off is one ordered queue per table, drained under a lock: records reach the
producer in the order the table was written, whichever agent hands off, so an older
value for a key can never land in the changelog after a newer one (compaction would
keep the older). The idempotent producer (`streams.faust_fixes`) keeps that order
through retries.
"""
from __future__ import annotations

import asyncio
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

import faust
from faust.streams import _current_event
from faust.types import FutureMessage


class _HandedOffChangelog:
    """Queues changelog records (instead of faust's send-soon buffer) until an agent
    hands them to the producer with `changelog_handed_off`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[FutureMessage] = []
        self._hand_off_lock = asyncio.Lock()

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> FutureMessage:
        # What faust's own send_changelog builds (serialized now, partition fixed now),
        # held here rather than put in the producer's buffer.
        fut = self.changelog_topic.as_future_message(  # type: ignore[attr-defined]
            key=key, value=value, partition=partition,
            key_serializer=self.key_serializer if key_serializer is None else key_serializer,  # type: ignore[attr-defined]
            value_serializer=self.value_serializer if value_serializer is None else value_serializer,  # type: ignore[attr-defined]
            callback=self._on_changelog_sent,  # type: ignore[attr-defined]
            eager_partitioning=True,
        )
        self._unsent.append(fut)
        return fut

    async def changelog_handed_off(self) -> None:
        """Hand every queued changelog record to the Kafka client, in write order.

        Under the lock, so a second caller waits until the records queued before its
        own are handed over, and then hands its own after them."""
        async with self._hand_off_lock:
            while self._unsent:
                unsent, self._unsent = self._unsent, []
                for fut in unsent:
                    await fut.message.channel.publish_message(fut, wait=False)


class HandedOffTable(_HandedOffChangelog, faust.Table):
    pass


class HandedOffGlobalTable(_HandedOffChangelog, faust.GlobalTable):
    pass


@contextmanager
def acting_as(source: faust.EventT) -> Iterator[None]:
    """Make `source` faust's current event for the table reads and writes inside.

    faust routes a table access (the local RocksDB partition and the changelog
    partition) to the partition of the *current event*; while a batch is handled that
    is the last event buffered, whatever its partition. Handling each event (or each
    partition's share of a batch) as one of its own events keeps every key on its
    Kafka partition, which is also what log compaction needs.
    """
    token = _current_event.set(weakref.ref(source))
    try:
        yield
    finally:
        _current_event.reset(token)
