"""The dead-letter path: a message at fault goes to `<topic>.dlq` with the reason.

The DLQ record keeps the original key and value bytes and carries the reason and the
source coordinates in headers (Kafka Connect's DLQ convention), so a fixed consumer
can re-drive it and any Kafka client (`kcat -J`) can read why.

A dead letter always fits. The broker can accept a message the producer cannot send
again as it is: a value that arrived compressed may be over the producer's
`max_request_size` uncompressed. Such a value (or key) is cut to fit and the
original sizes go in headers (`original_value_size`, `original_key_size`), so the
record says what it lost; a dead letter that could not be written would stop the
worker (`streams.delivery`), and a stream must not stop for one bad message.
"""
from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.app import app, dead_letter_topics
from streams.ingest_stats import stats

log = logging.getLogger(__name__)

MAX_REASON_BYTES = 4000
# Room left in a produce request for the record batch's own framing.
_REQUEST_OVERHEAD = 1024


def dead_letter_record(msg: faust.types.Message, reason: str, max_request_size: int
                       ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter for `msg`, cut to fit one request."""
    key, value = msg.key, msg.value
    headers = [
        ("error", reason.encode(errors="replace")[:MAX_REASON_BYTES]),
        ("source_topic", msg.topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
    ]
    budget = max_request_size - _REQUEST_OVERHEAD
    for name in ("value", "key"):  # the value goes first: the key is what re-driving needs
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        over = size - budget
        field = value if name == "value" else key
        if over <= 0 or not field:
            continue
        headers.append((f"original_{name}_size", str(len(field)).encode()))
        # The new header costs bytes too; cut a little more than the excess.
        cut = field[: max(0, len(field) - over - 64)]
        if name == "value":
            value = cut
        else:
            key = cut
    return key, value, headers


async def dead_letter(event: faust.EventT, reason: str) -> asyncio.Future:
    """Hand the dead letter for `event` to the producer; return its delivery future.

    It is counted in `stats` once delivered; a failed delivery is fatal
    (`streams.delivery`), so the caller must await the future before it acks."""
    msg = event.message
    key, value, headers = dead_letter_record(msg, reason, app.conf.producer_max_request_size)
    delivery = await dead_letter_topics[msg.topic].send(key=key, value=value, headers=headers, force=True)
    topic = msg.topic

    def delivered(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            stats.dead_lettered(topic)
    delivery.add_done_callback(delivered)
    log.warning("dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason[:500])
    return delivery
