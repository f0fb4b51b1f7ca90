"""`score-requests` -> `score-results`: the scoring agent of a serving worker.

    register_serving()   # after streams.app.register_agents(), before the worker starts

A request is answered by the worker that owns the member's partition (score requests
are co-partitioned with the member-keyed topics), from the member's state in the
`member-state` table and the job side held by this worker's `IndexReplica`. The
scoring itself is `MatchingEngine.score`, the call replay makes, run in a thread so a
slow model never blocks the event loop. `now` is the request's event time, as in
replay.

A request's deadline is its event time plus `deadline_ms`. One already past it when
it arrives (a backlog after a restart, a slow producer) is answered at once with
status `expired` and no items: scoring it late would spend the model on an answer
nobody waits for, and answer as if it were on time. Until the replica has caught up
with the job topics it saw at start, requests wait for it, up to their deadline.
"""
from __future__ import annotations

import asyncio
import logging
import time

from serving.engine import EngineConfig, MatchingEngine, load_encoder
from serving.replica import IndexReplica
from serving.results import result_event_id, score_result
from serving.scorer import make_scorer
from serving.settings import get_serving_settings
from streams.app import app, member_state, settings, source_topics
from streams.decoding import decode_or_dead_letter
from streams.schemas import ScoreCompleted, ScoreRequested, ScoreStatus, serialize
from streams.state import MemberState
from streams.topics import SCORE_REQUESTS, SCORE_RESULTS

log = logging.getLogger(__name__)

_serving = get_serving_settings()
engine = MatchingEngine(
    make_scorer(_serving.scorer),
    EngineConfig(retrieve_k=_serving.retrieve_k, history_max_items=settings.history_max_items),
    retrievals={"default": _serving.retrieval},
    keep_members=False,  # member state lives in the worker's table
    embedder=load_encoder(_serving.encoder),
)
replica = IndexReplica.for_serving(engine, settings.kafka_bootstrap, settings.app_id)


async def answer(request: ScoreRequested, clock=time.time) -> ScoreCompleted:
    req = request.payload
    deadline = request.event_time.timestamp() + req.deadline_ms / 1000.0
    loop = asyncio.get_running_loop()
    late_s = clock() - deadline
    if late_s >= 0:
        return _expired(request, f"past its deadline on arrival ({late_s:.3f} s late)")
    if not replica.ready and not await loop.run_in_executor(None, replica.wait_ready, deadline - clock()):
        return _expired(request, "the job index replica had not caught up by the deadline")
    stored = member_state.get(req.member_id)
    state = MemberState.from_dict(stored) if stored else MemberState(member_id=req.member_id)
    now = request.event_time.timestamp()
    result = await loop.run_in_executor(None, engine.score, req, now, state)
    return _completed(request, result)


def _expired(request: ScoreRequested, why: str) -> ScoreCompleted:
    req = request.payload
    return _completed(request, score_result(req.request_id, req.member_id, model_id=engine.model_id,
                                            error=why, status=ScoreStatus.EXPIRED))


def _completed(request: ScoreRequested, result) -> ScoreCompleted:
    return ScoreCompleted(event_id=result_event_id(request.event_id), event_time=request.event_time,
                          payload=result)


@app.agent(source_topics[SCORE_REQUESTS.name])
async def process_score_requests(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is None:
            continue
        completed = await answer(typed)
        await source_topics[SCORE_RESULTS.name].send(key=typed.payload.member_id.encode(), value=serialize(completed))


@app.task
async def start_replica() -> None:
    replica.start()


@app.page("/serving/")
async def serving_view(web, request):
    return web.json({"replica_ready": replica.ready, "replica_start_offsets": replica.start_offsets,
                     "replica_lag": replica.lag, "replica_read": replica.read, "replica_invalid": replica.invalid,
                     "jobs_open": sum(1 for e in engine.catalog.values() if e.open), "hires": engine.links.hires,
                     "scorer": engine.model_id, "replica_error": repr(replica.error) if replica.error else None})


def register_serving() -> None:
    """Importing this module declares the agent, the replica task and the /serving/ page;
    this function exists so call sites read as what they mean."""
