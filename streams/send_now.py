"""Records a client waits on leave the worker's producer at once, not after its linger.

The worker's producer lingers (`producer_linger`, 20 ms by default) so that changelog
and dead-letter writes share produce requests: without it every table update was its
own request, and ingest was bound at ~100 events/s. A score result is the opposite
case: one record somebody is waiting for, to which the linger only adds latency.

aiokafka (pinned in constraints.txt) keeps one open batch per partition and sends a
batch before its linger is out once the batch is closed: its `flush_for_commit` closes
every open batch and wakes the sender in just this way when a transaction commits.
`send_now` sends through the faust topic as any record goes (so faust's producer, the
delivery watch of `streams.delivery` and the flush before each commit cover it), then
closes the open batches of that topic alone and wakes the sender. Changelogs keep
lingering. Should aiokafka's insides change, the record still goes, after the linger,
and the worker says so once.
"""
from __future__ import annotations

import logging
from typing import Any

import faust

log = logging.getLogger(__name__)
_warned = False


async def send_now(topic: faust.TopicT, key: bytes, value: bytes) -> Any:
    """Send one record on `topic` and have it leave without waiting out the linger.
    Returns faust's delivery future, as `topic.send` does."""
    fut = await topic.send(key=key, value=value)
    _close_open_batches(topic.app.producer, topic.get_topic_name())
    return fut


def _close_open_batches(producer: Any, topic: str) -> None:
    global _warned
    try:
        accumulator = producer._ensure_producer()._message_accumulator
        closed = 0
        for tp, batches in accumulator._batches.items():
            if tp.topic == topic:
                for batch in batches:
                    batch._builder.close()
                    closed += 1
        waiter = accumulator._waiter_future
    except AttributeError as err:  # another aiokafka, or faust's threaded producer
        if not _warned:
            _warned = True
            log.warning("records on %s wait out the producer's linger: aiokafka's accumulator "
                        "is not where send_now looks (%s)", topic, err)
        return
    if closed and not waiter.done():
        waiter.set_result(None)  # the sender waits on this for new data or a linger's end
