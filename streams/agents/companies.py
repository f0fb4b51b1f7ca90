"""`companies` -> the company directory."""
from streams.app import app, companies, source_topics
from streams.decoding import decode_or_dead_letter
from streams.ingest_stats import stats


@app.agent(source_topics["companies"])
async def process_companies(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is None:
            continue
        company_id = typed.payload.company_id
        entry = companies.get(company_id)
        if entry and entry["event_id"] == typed.event_id:
            stats.duplicate(event.message.topic)
            continue
        companies[company_id] = {
            "company": typed.payload.model_dump(mode="json"), "event_id": typed.event_id,
        }
        stats.applied(event.message.topic, event.message.timestamp)
