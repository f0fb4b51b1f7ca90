"""`jobs` -> the job catalog (posted, updated, closed).

Upserts are idempotent by nature (the same event writes the same value); the last
applied event id and time are kept so a redelivery, or an older event arriving late,
is recognised and neither applied nor counted.
"""
from streams.app import app, job_catalog, source_topics
from streams.decoding import decode_or_dead_letter
from streams.ingest_stats import stats
from streams.schemas import JobClosedEvent


@app.agent(source_topics["jobs"])
async def process_jobs(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is None:
            continue
        job_id = typed.payload.job_id
        entry = job_catalog.get(job_id)
        if entry and (
            entry["event_id"] == typed.event_id
            or typed.event_time.timestamp() < entry["event_time"]
        ):  # a redelivery, or an event older than what the catalog already holds
            stats.duplicate(event.message.topic)
            continue
        if isinstance(typed, JobClosedEvent):
            if entry is None:  # closing a job we never saw: remember it as closed
                entry = {"job": None}
            entry = {**entry, "open": False}
        else:
            entry = {"job": typed.payload.model_dump(mode="json"), "open": True}
        entry["event_id"] = typed.event_id
        entry["event_time"] = typed.event_time.timestamp()
        job_catalog[job_id] = entry
        stats.applied(event.message.topic, event.message.timestamp)
