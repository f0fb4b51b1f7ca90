"""`companies` -> the company directory: the latest upsert per company."""
from __future__ import annotations

from streams.app import companies, source_topics
from streams.processing import TableUpdate, table_agent
from streams.schemas import CompanyUpserted
from streams.state import SourcePosition
from streams.topics import COMPANIES


def upsert(entry: dict | None, event: CompanyUpserted, source: SourcePosition) -> dict:
    if entry is not None and entry["event_id"] == event.event_id:
        return entry  # a redelivery
    return {"company": event.payload.model_dump(mode="json"), "event_id": event.event_id}


process_companies = table_agent(source_topics[COMPANIES.name], TableUpdate(
    table=companies,
    key=lambda event: event.payload.company_id,
    apply=upsert,
    load=lambda stored: stored,
    dump=lambda entry: entry,
), name="companies")
