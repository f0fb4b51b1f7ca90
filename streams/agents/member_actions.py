"""`member-actions` -> view/click/save/apply/dismiss/search appended to histories."""
from streams.app import app, source_topics
from streams.decoding import decoded_batches
from streams.member_folding import fold_member_events


@app.agent(source_topics["member-actions"])
async def process_member_actions(stream):
    async for batch in decoded_batches(stream):
        fold_member_events(batch)
