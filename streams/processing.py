"""The one way a table-writing agent processes its stream.

An agent is declared as a `TableUpdate`: which table, the key of an event, and a pure
per-event function `(state, event, source) -> state` that returns the *same* state
object when the event changes nothing (a redelivery or a duplicate). Everything else
is here, once, so a new agent cannot forget a step:

- decoding and the key checks (`streams.decoding`); a message at fault is
  dead-lettered with the reason;
- an exception from the per-event function is the message's fault if it is a
  `MESSAGE_FAULTS` type (bad data the schema let through): that event is
  dead-lettered and the state stays as it was. Anything else (a store failure, a
  failed produce, a bug) is the system's fault and fatal (`streams.delivery`);
- one table read and one write per key per batch (a member's events cluster in time,
  and rendering a verbalized history is the costly part of a write); a key whose
  events were all duplicates is written again with its stored value, so a changelog
  that fell behind RocksDB (a crash between the store write and the changelog
  delivery) catches up when the events are redelivered;
- the changelog hand-off, then the dead letters' delivery, and only then the acks
  (faust's `take_events` acks when the agent asks for the next batch). An event thus
  ends applied, dead-lettered, or unacked, never silently acked.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

import faust

from streams.app import app, settings
from streams.dead_letters import dead_letter
from streams.decoding import decode
from streams.delivery import StateStoreError, deliveries, fatal
from streams.ingest_stats import stats
from streams.schemas import Event
from streams.state import SourcePosition
from streams.tables import acting_as

log = logging.getLogger(__name__)

S = TypeVar("S")

# Exceptions a per-event function raises when the *event* is at fault (pydantic's
# ValidationError is a ValueError). Other exceptions stop the worker.
MESSAGE_FAULTS: tuple[type[BaseException], ...] = (ValueError, TypeError, LookupError, ArithmeticError)


@dataclass(frozen=True)
class TableUpdate(Generic[S]):
    """An agent: how one event changes one table entry."""

    table: Any  # a streams.tables.HandedOffTable or HandedOffGlobalTable
    key: Callable[[Event], str]
    apply: Callable[[S | None, Event, SourcePosition], S | None]
    load: Callable[[dict], S]  # stored value -> state
    dump: Callable[[S], dict]  # state -> stored value


def table_agent(channel: faust.TopicT, update: TableUpdate, name: str) -> Any:
    """Declare the agent that runs `update` over `channel`'s events."""

    async def agent(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_max_events, within=settings.batch_within):
            try:
                await process_batch(events, update)
            except asyncio.CancelledError:
                # The worker is stopping mid-batch; take_events will ack the batch as
                # the generator closes, so no commit may follow from this process.
                deliveries.block_commits(f"agent {name} cancelled mid-batch")
                raise
            except Exception as err:  # the system's fault: see the module docstring
                log.exception("agent %s failed on a batch", name)
                fatal(f"agent {name}: {err!r}")

    agent.__name__ = agent.__qualname__ = name
    return app.agent(channel, name=name)(agent)


@dataclass
class _Entry:
    """One key's state while a batch is folded into it."""

    stored: dict | None  # as read from the table
    state: Any
    last_event: faust.EventT  # decides the store and changelog partition (streams.tables)
    changed: bool = False
    applied: list[faust.EventT] = field(default_factory=list)
    duplicates: list[faust.EventT] = field(default_factory=list)


async def process_batch(events: Sequence[faust.EventT], update: TableUpdate) -> None:
    entries: dict[str, _Entry] = {}
    dead_letters: list[asyncio.Future] = []
    for event in events:
        typed = decode(event)
        if isinstance(typed, str):
            dead_letters.append(await dead_letter(event, typed))
            continue
        key = update.key(typed)
        entry = entries.get(key)
        if entry is None:
            stored = _read(update.table, key, event)
            entry = entries[key] = _Entry(stored, update.load(stored) if stored is not None else None, event)
        entry.last_event = event
        msg = event.message
        try:
            after = update.apply(entry.state, typed, SourcePosition(msg.topic, msg.partition, msg.offset))
        except MESSAGE_FAULTS as err:
            dead_letters.append(await dead_letter(event, f"processing failed: {type(err).__name__}: {err}"))
            continue
        if after is entry.state:
            entry.duplicates.append(event)
        else:
            entry.state, entry.changed = after, True
            entry.applied.append(event)

    for key, entry in entries.items():
        if entry.changed:
            _write(update.table, key, update.dump(entry.state), entry.last_event)
        elif entry.duplicates and entry.stored is not None:
            _write(update.table, key, entry.stored, entry.last_event)  # the changelog catches up
    await update.table.changelog_handed_off()
    if dead_letters:
        await asyncio.gather(*dead_letters)  # a failure raises: fatal, before any ack

    for entry in entries.values():
        for event in entry.applied:
            stats.applied(event.message.topic, event.message.timestamp)
        for event in entry.duplicates:
            stats.duplicate(event.message.topic)


def _read(table: Any, key: str, event: faust.EventT) -> dict | None:
    with acting_as(event):  # read from the key's own partition
        try:
            return table.get(key)
        except Exception as err:
            raise StateStoreError(f"reading {key!r} from {table.name}: {err!r}") from err


def _write(table: Any, key: str, value: dict, event: faust.EventT) -> None:
    with acting_as(event):  # store and changelog partition = the key's partition
        try:
            table[key] = value
        except Exception as err:
            raise StateStoreError(f"writing {key!r} to {table.name}: {err!r}") from err


def read_store(table: Any, key: str) -> dict | None:
    """A table read inside a per-event function (e.g. a job lookup): a failure is the
    store's, never the event's."""
    try:
        return table.get(key)
    except Exception as err:
        raise StateStoreError(f"reading {key!r} from {table.name}: {err!r}") from err
