"""`jobs` -> the job catalog (posted, updated, closed), by `streams.state.apply_job_event`:
a redelivery, or an event older than what the catalog holds, changes nothing."""
from __future__ import annotations

from streams.app import job_catalog, source_topics
from streams.processing import TableUpdate, table_agent
from streams.state import CatalogEntry, apply_job_event
from streams.topics import JOBS

process_jobs = table_agent(source_topics[JOBS.name], TableUpdate(
    table=job_catalog,
    key=lambda event: event.payload.job_id,
    apply=lambda entry, event, source: apply_job_event(entry, event),
    load=CatalogEntry.from_dict,
    dump=CatalogEntry.to_dict,
), name="jobs")
