"""Folding member-keyed events into the `member-state` table.

The agents for `members`, `member-actions` and `hires` are thin glue around this:
read the member's state, apply the pure update from `streams.state`, write it back
with the verbalized history re-rendered. There is no `await` between the read and the
write, so agents sharing the event loop cannot interleave on one member.
"""
from __future__ import annotations

import faust

from streams.app import job_catalog, member_state, settings
from streams.ingest_stats import stats
from streams.schemas import HireConfirmed, Job, MemberActed, MemberUpserted
from streams.state import MemberState, apply_member_event, verbalized_history


def lookup_job(job_id: str) -> Job | None:
    entry = job_catalog.get(job_id)
    # Stored entries were validated on the way in; construct without re-validating.
    return Job.model_construct(**entry["job"]) if entry and entry["job"] else None


def fold_member_event(event: MemberUpserted | MemberActed | HireConfirmed, source: faust.EventT) -> None:
    member_id = event.payload.member_id
    stored = member_state.get(member_id)
    before = MemberState.from_dict(stored) if stored else None
    after = apply_member_event(
        before, event, lookup_job,
        max_items=settings.history_max_items, seen_window=settings.seen_event_ids,
    )
    if after is before:  # a redelivered event: nothing changes, nothing is counted
        stats.duplicate(source.message.topic)
        return
    value = after.to_dict()
    value["verbalized_history"] = verbalized_history(
        after, now=after.last_event_time, max_chars=settings.history_max_chars
    )
    member_state[member_id] = value
    stats.applied(source.message.topic, source.message.timestamp)
