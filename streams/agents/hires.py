"""`hires` -> confirmed hires appended to the hired member's history."""
from streams.app import app, source_topics
from streams.decoding import decoded_batches
from streams.member_folding import fold_member_events


@app.agent(source_topics["hires"])
async def process_hires(stream):
    async for batch in decoded_batches(stream):
        fold_member_events(batch)
