"""`members` -> member profile upserts into `member-state`."""
from streams.app import app, source_topics
from streams.decoding import decoded_batches
from streams.member_folding import fold_member_events


@app.agent(source_topics["members"])
async def process_members(stream):
    async for batch in decoded_batches(stream):
        fold_member_events(batch)
