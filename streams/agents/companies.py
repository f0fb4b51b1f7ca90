"""`companies` -> the company directory."""
import faust

from streams.app import app, companies, source_topics
from streams.decoding import decoded_batches
from streams.ingest_stats import stats
from streams.schemas import Event
from streams.tables import acting_as


@app.agent(source_topics["companies"])
async def process_companies(stream):
    async for batch in decoded_batches(stream):
        for source, typed in batch:
            with acting_as(source):
                record(source, typed)


def record(source: faust.EventT, typed: Event) -> None:
    company_id = typed.payload.company_id
    entry = companies.get(company_id)
    if entry and entry["event_id"] == typed.event_id:
        stats.duplicate(source.message.topic)
        return
    companies[company_id] = {"company": typed.payload.model_dump(mode="json"), "event_id": typed.event_id}
    stats.applied(source.message.topic, source.message.timestamp)
