"""Turning a raw faust event into a typed event, or into a dead letter."""
from __future__ import annotations

import faust

from streams.dead_letters import send_to_dead_letters
from streams.schemas import Event, InvalidEvent, key_of, parse


async def decode_or_dead_letter(event: faust.EventT) -> Event | None:
    """The typed event, or None after routing the message to `<topic>.dlq`."""
    msg = event.message
    try:
        typed = parse(msg.topic, msg.value or b"")
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
