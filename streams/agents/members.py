"""`members` -> member profile upserts into `member-state`."""
from streams.app import app, source_topics
from streams.decoding import decode_or_dead_letter
from streams.member_folding import fold_member_event


@app.agent(source_topics["members"])
async def process_members(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is not None:
            fold_member_event(typed, event)
