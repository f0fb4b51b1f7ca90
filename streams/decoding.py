"""Turning raw faust events into typed events (or dead letters), a batch at a time."""
from __future__ import annotations

from typing import AsyncIterator

import faust

from streams.app import hand_off_table_writes, settings
from streams.bounds import EventBounds, judging_clock, parse_bounded
from streams.dead_letters import send_to_dead_letters
from streams.schemas import Event, InvalidEvent, key_of

_bounds = EventBounds.from_settings(settings)


async def decode_or_dead_letter(event: faust.EventT) -> Event | None:
    """The typed event, or None after routing the message to `<topic>.dlq`."""
    msg = event.message
    try:
        typed = parse_bounded(msg.topic, msg.value or b"", _bounds, judging_clock(msg.timestamp))
    except InvalidEvent as err:
        await send_to_dead_letters(event, err.reason)
        return None
    key = msg.key.decode(errors="replace") if msg.key is not None else None
    if key is not None and key != key_of(typed):
        # A wrongly keyed member event would be folded into the state of whichever
        # member owns that partition: refuse it rather than corrupt state.
        await send_to_dead_letters(event, f"message key {key!r} != payload key {key_of(typed)!r}")
        return None
    return typed


async def decode_batch(batch) -> list[tuple[faust.EventT, Event]]:
    """The batch's valid events with their source messages; the rest dead-lettered."""
    out = []
    for source in batch:
        typed = await decode_or_dead_letter(source)
        if typed is not None:
            out.append((source, typed))
    return out


async def decoded_batches(stream) -> AsyncIterator[list[tuple[faust.EventT, Event]]]:
    """How every table-writing agent reads its stream: batches of (source message,
    typed event), malformed messages dead-lettered.

    When the agent has handled a batch and asks for the next, the table changes it
    made are handed to the Kafka client first, and only then does faust ack the
    batch (take_events acks after its own yield resumes): see `streams.tables`.
    """
    async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within):
        yield await decode_batch(batch)
        await hand_off_table_writes()
