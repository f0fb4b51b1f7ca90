"""Raw faust events -> typed events, or the reason the message is dead-lettered.

A message is refused (never applied) when it is not a valid event for its topic,
when it has no key, when its key is not the payload's key, or when it sits on a
partition other than the one its key maps to with the Java client's murmur2
partitioner. The last two matter because state is partitioned by key: a member's
event on another member's partition would be folded into state the owner of that
partition holds, and the member's state would split across workers.
"""
from __future__ import annotations

from functools import lru_cache

import faust
from kafka.partitioner import murmur2

from streams.app import app, settings
from streams.bounds import EventBounds, judging_clock, parse_bounded
from streams.dead_letters import dead_letter
from streams.schemas import Event, InvalidEvent, key_of

_bounds = EventBounds.from_settings(settings)


@lru_cache(maxsize=1 << 16)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client (and kafka-python, aiokafka, faust) picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_count(topic: str) -> int:
    # From the consumer's metadata (the topic as it is), the configured count until
    # the metadata is in.
    try:
        counted = app.consumer.topic_partitions(topic)
    except AttributeError:  # faust's aiokafka consumer has no group coordinator yet (a read at start-up)
        counted = None
    return counted or settings.member_partitions


def decode(event: faust.EventT) -> Event | str:
    """The typed event, or why the message must go to `<topic>.dlq`."""
    msg = event.message
    try:
        typed = parse_bounded(msg.topic, msg.value or b"", _bounds, judging_clock(msg.timestamp))
    except InvalidEvent as err:
        return err.reason
    expected = key_of(typed)
    if msg.key is None:
        return f"message has no key; expected {expected!r}"
    if msg.key != expected.encode():
        return f"message key {msg.key.decode(errors='replace')!r} != payload key {expected!r}"
    partitions = partition_count(msg.topic)
    home = key_partition(msg.key, partitions)
    if msg.partition != home:
        return (f"key {expected!r} belongs on partition {home} of {partitions} (murmur2), "
                f"arrived on partition {msg.partition}")
    return typed


async def decode_or_dead_letter(event: faust.EventT) -> Event | None:
    """The typed event, or None once the message is delivered to `<topic>.dlq`
    (for agents that do not write tables; table agents use `streams.processing`)."""
    typed = decode(event)
    if isinstance(typed, str):
        await (await dead_letter(event, typed))
        return None
    return typed
