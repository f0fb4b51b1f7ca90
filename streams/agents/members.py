"""`members` -> member profile upserts into `member-state`."""
from streams.app import app, settings, source_topics, hand_off_table_writes
from streams.decoding import decode_batch
from streams.member_folding import fold_member_events


@app.agent(source_topics["members"])
async def process_members(stream):
    async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within):
        fold_member_events(await decode_batch(batch))
        await hand_off_table_writes()
