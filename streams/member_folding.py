"""Folding member-keyed events into the `member-state` table, a batch at a time.

The agents for `members`, `member-actions` and `hires` are thin glue around this.
A member's events cluster in time (a session is a burst of views, clicks, applies),
so a batch of 500 events holds only ~16% distinct members: each member's state is
read once, every event of theirs is applied in order with the pure update from
`streams.state`, and the result (with its verbalized history) is written once.
There is no `await` between a read and its write, so agents sharing the event loop
cannot interleave on one member.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import faust

from streams.app import job_catalog, member_state, settings
from streams.ingest_stats import stats
from streams.schemas import HireConfirmed, Job, MemberActed, MemberUpserted
from streams.state import CatalogEntry, MemberState, apply_member_event, verbalized_history
from streams.tables import acting_as

MemberEvent = MemberUpserted | MemberActed | HireConfirmed


def lookup_job(job_id: str) -> Job | None:
    stored = job_catalog.get(job_id)
    return CatalogEntry.from_dict(stored).job if stored else None


def fold_member_events(batch: Sequence[tuple[faust.EventT, MemberEvent]]) -> None:
    """Apply a batch of (source message, typed event) pairs, one table write per member."""
    by_partition: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for source, event in batch:
        by_partition[source.message.partition][event.payload.member_id].append((source, event))
    for members in by_partition.values():
        any_source = next(iter(members.values()))[0][0]
        with acting_as(any_source):
            for member_id, items in members.items():
                _fold_one_member(member_id, items)


def _fold_one_member(member_id: str, items: list[tuple[faust.EventT, MemberEvent]]) -> None:
    stored = member_state.get(member_id)
    state = MemberState.from_dict(stored) if stored else None
    applied = []
    for source, event in items:
        after = apply_member_event(
            state, event, lookup_job,
            max_items=settings.history_max_items, seen_window=settings.seen_event_ids,
        )
        if after is state:  # a redelivered event: nothing changes, nothing is counted
            stats.duplicate(source.message.topic)
        else:
            applied.append(source)
        state = after
    if not applied:
        return
    value = state.to_dict()
    value["verbalized_history"] = verbalized_history(
        state, now=state.last_event_time, max_chars=settings.history_max_chars
    )
    member_state[member_id] = value
    for source in applied:
        stats.applied(source.message.topic, source.message.timestamp)
