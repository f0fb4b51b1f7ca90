"""`member-actions` -> view/click/save/apply/dismiss/search appended to histories."""
from streams.app import app, settings, source_topics, hand_off_table_writes
from streams.decoding import decode_batch
from streams.member_folding import fold_member_events


@app.agent(source_topics["member-actions"])
async def process_member_actions(stream):
    async for batch in stream.take_events(settings.batch_max_events, within=settings.batch_within):
        fold_member_events(await decode_batch(batch))
        await hand_off_table_writes()
