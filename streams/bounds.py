"""Bounds on what a message may be before it touches state: size and event time.

`streams.schemas.parse` says whether a message is a well-formed event; this module
says whether a well-formed event is believable. A message outside the bounds is an
`InvalidEvent` like any other, so it reaches `<topic>.dlq` with the reason:

- its value is larger than `max_event_bytes` (checked before parsing, so a hostile
  megabyte is never handed to the JSON parser, and the dead letter stays small);
- its event time is before `event_time_min` (2000 by default: nothing in this
  marketplace is older), or more than `event_time_max_ahead_s` past the clock.
  A year-9999 time would otherwise pin a member's "now" and make every later job
  update look older than the one the catalog holds, so the job could never close.

"The clock" is the earlier of the reader's clock and the message's Kafka timestamp,
so a redelivered message is judged as it was the first time (a worker replaying an
old partition after a restart does not suddenly accept what it once refused), while
a producer that lies about the Kafka timestamp gains nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from streams.schemas import Event, InvalidEvent, parse
from streams.settings import Settings, get_settings


@dataclass(frozen=True)
class EventBounds:
    max_event_bytes: int
    event_time_min: datetime
    event_time_max_ahead_s: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "EventBounds":
        s = settings or get_settings()
        return cls(s.max_event_bytes, s.event_time_min, s.event_time_max_ahead_s)


def oversize_reason(raw: bytes, bounds: EventBounds) -> str | None:
    if len(raw) > bounds.max_event_bytes:
        return f"value of {len(raw)} bytes exceeds max_event_bytes={bounds.max_event_bytes}"
    return None


def event_time_reason(event: Event, clock: float, bounds: EventBounds) -> str | None:
    """Why `event`'s time is not believable at `clock` (unix seconds), or None."""
    t = event.event_time
    if t < bounds.event_time_min:
        return f"event_time {t.isoformat()} is before event_time_min {bounds.event_time_min.isoformat()}"
    ahead = t.timestamp() - clock
    if ahead > bounds.event_time_max_ahead_s:
        return (f"event_time {t.isoformat()} is {ahead:.0f} s ahead of the clock "
                f"(max {bounds.event_time_max_ahead_s:.0f} s)")
    return None


def judging_clock(record_timestamp_s: float | None, now: float | None = None) -> float:
    """The clock an event time is judged against (see the module docstring), from the
    message's Kafka timestamp in seconds (faust's unit; kafka-python's ms / 1000)."""
    now = time.time() if now is None else now
    if record_timestamp_s is None or record_timestamp_s <= 0:
        return now
    return min(now, record_timestamp_s)


def parse_bounded(topic: str, raw: bytes, bounds: EventBounds, clock: float) -> Event:
    """`schemas.parse` plus the bounds; raises InvalidEvent with the reason."""
    reason = oversize_reason(raw, bounds)
    if reason is not None:
        raise InvalidEvent(topic, reason, raw)
    event = parse(topic, raw)
    reason = event_time_reason(event, clock, bounds)
    if reason is not None:
        raise InvalidEvent(topic, reason, raw)
    return event
