"""`jobs` -> the job catalog (posted, updated, closed), by `streams.state.apply_job_event`:
a redelivery, or an event older than what the catalog holds, changes nothing."""
from streams.app import app, job_catalog, source_topics
from streams.decoding import decode_or_dead_letter
from streams.ingest_stats import stats
from streams.state import CatalogEntry, apply_job_event


@app.agent(source_topics["jobs"])
async def process_jobs(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is None:
            continue
        stored = job_catalog.get(typed.payload.job_id)
        before = CatalogEntry.from_dict(stored) if stored else None
        after = apply_job_event(before, typed)
        if after is before:
            stats.duplicate(event.message.topic)
            continue
        job_catalog[typed.payload.job_id] = after.to_dict()
        stats.applied(event.message.topic, event.message.timestamp)
