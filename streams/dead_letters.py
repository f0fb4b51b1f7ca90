"""The dead-letter path: a message that fails validation or processing goes to
`<topic>.dlq` with the reason, and the stream goes on.

The DLQ record keeps the original key and value bytes untouched and carries the
reason and the source coordinates in headers (Kafka Connect's DLQ convention), so a
fixed consumer can re-drive it and any Kafka client (`kcat -J`) can read why.
"""
from __future__ import annotations

import logging

import faust

from streams.app import dead_letter_topics
from streams.ingest_stats import stats

log = logging.getLogger(__name__)


async def send_to_dead_letters(event: faust.EventT, reason: str) -> None:
    msg = event.message
    headers = {
        "error": reason.encode()[:4000],
        "source_topic": msg.topic.encode(),
        "source_partition": str(msg.partition).encode(),
        "source_offset": str(msg.offset).encode(),
    }
    await dead_letter_topics[msg.topic].send(key=msg.key, value=msg.value, headers=headers)
    stats.dead_lettered(msg.topic)
    log.warning("dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
