"""`jobs` -> the job catalog (posted, updated, closed), by `streams.state.apply_job_event`:
a redelivery, or an event older than what the catalog holds, changes nothing."""
import faust

from streams.app import app, job_catalog, settings, source_topics, hand_off_table_writes
from streams.decoding import decode_batch
from streams.ingest_stats import stats
from streams.schemas import JobEvent
from streams.state import CatalogEntry, apply_job_event
from streams.tables import acting_as


@app.agent(source_topics["jobs"])
async def process_jobs(stream):
    # In batches, as the member agents: the wait for changelog delivery is paid per batch.
    async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within):
        for source, typed in await decode_batch(batch):
            with acting_as(source):  # each job on its own partition of the changelog
                catalog(source, typed)
        await hand_off_table_writes()


def catalog(source: faust.EventT, typed: JobEvent) -> None:
    stored = job_catalog.get(typed.payload.job_id)
    before = CatalogEntry.from_dict(stored) if stored else None
    after = apply_job_event(before, typed)
    if after is before:
        stats.duplicate(source.message.topic)
        return
    job_catalog[typed.payload.job_id] = after.to_dict()
    stats.applied(source.message.topic, source.message.timestamp)
