"""`jobs` -> the job catalog (posted, updated, closed), by `streams.state.apply_job_event`:
a redelivery, or an event older than what the catalog holds, changes nothing."""
import faust

from streams.app import app, job_catalog, source_topics
from streams.decoding import decoded_batches
from streams.ingest_stats import stats
from streams.schemas import JobEvent
from streams.state import CatalogEntry, apply_job_event
from streams.tables import acting_as


@app.agent(source_topics["jobs"])
async def process_jobs(stream):
    async for batch in decoded_batches(stream):
        for source, typed in batch:
            with acting_as(source):  # each job on its own partition of the changelog
                catalog(source, typed)


def catalog(source: faust.EventT, typed: JobEvent) -> None:
    stored = job_catalog.get(typed.payload.job_id)
    before = CatalogEntry.from_dict(stored) if stored else None
    after = apply_job_event(before, typed)
    if after is before:
        stats.duplicate(source.message.topic)
        return
    job_catalog[typed.payload.job_id] = after.to_dict()
    stats.applied(source.message.topic, source.message.timestamp)
