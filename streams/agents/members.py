"""`members`, `member-actions`, `hires` -> `member-state`: one agent over the three
member-keyed topics, folding each event into the member's state with the pure update
`streams.state.apply_member_event` (the one replay and the training data use too).

One agent, so one writer of `member-state`: a member's changelog records leave in
the order its state was written."""
from __future__ import annotations

from streams.app import app, job_catalog, member_state, settings
from streams.processing import TableUpdate, read_store, table_agent
from streams.schemas import Job
from streams.state import CatalogEntry, MemberState, SourcePosition, apply_member_event, verbalized_history
from streams.topics import Reader, read_by

MEMBER_TOPICS = read_by(Reader.MEMBER_AGENT)


def lookup_job(job_id: str) -> Job | None:
    stored = read_store(job_catalog, job_id)
    return CatalogEntry.from_dict(stored).job if stored else None


def fold(state: MemberState | None, event, source: SourcePosition) -> MemberState:
    return apply_member_event(state, event, lookup_job, max_items=settings.history_max_items,
                              seen_window=settings.seen_event_ids, source=source)


def stored_value(state: MemberState) -> dict:
    value = state.to_dict()
    value["verbalized_history"] = verbalized_history(
        state, now=state.last_event_time, max_chars=settings.history_max_chars)
    return value


member_events = app.topic(*MEMBER_TOPICS, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")

process_member_events = table_agent(member_events, TableUpdate(
    table=member_state,
    key=lambda event: event.payload.member_id,
    apply=fold,
    load=MemberState.from_dict,
    dump=stored_value,
), name="member-events")
