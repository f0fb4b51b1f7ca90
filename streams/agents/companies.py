"""`companies` -> the company directory."""
import faust

from streams.app import app, companies, settings, source_topics, hand_off_table_writes
from streams.decoding import decode_batch
from streams.ingest_stats import stats
from streams.schemas import Event
from streams.tables import acting_as


@app.agent(source_topics["companies"])
async def process_companies(stream):
    async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within):
        for source, typed in await decode_batch(batch):
            with acting_as(source):
                record(source, typed)
        await hand_off_table_writes()


def record(source: faust.EventT, typed: Event) -> None:
    company_id = typed.payload.company_id
    entry = companies.get(company_id)
    if entry and entry["event_id"] == typed.event_id:
        stats.duplicate(source.message.topic)
        return
    companies[company_id] = {"company": typed.payload.model_dump(mode="json"), "event_id": typed.event_id}
    stats.applied(source.message.topic, source.message.timestamp)
