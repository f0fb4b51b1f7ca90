"""`score-requests` -> `score-results`, and the HTTP API: the serving side of a worker.

    register_serving()   # after streams.app.register_agents(), before the worker starts

A Kafka request is answered by the worker that owns the member's partition (score
requests are co-partitioned with the member-keyed topics), from the member's state in
the `member-state` table and the job side held by this worker's `IndexReplica`. Both
Kafka and HTTP requests go through one `ScoringService` (serving/online/scoring.py): the
same stages, deadlines, batching across members, overload policy and metrics. The
agent runs `kafka_concurrency` requests at once so that requests arriving together
can share a model call; results are acked in order by faust whatever order they
finish in. `sent_at` is the request's event time, as in replay.

A Kafka request already past its deadline (`event_time + deadline_ms`) when it arrives
(a backlog after a restart, a slow producer) is answered at once with status
`expired` and no items: scoring it late would spend the model on an answer nobody
waits for, and answer as if it were on time. Until the replica has caught up with the
job topics it saw at start, requests wait for it, up to their deadline.

The HTTP API (`serving.online.http_api`, FastAPI under uvicorn) runs on the worker's own event
loop as a faust service on `HIRESTREAM_SERVING_HTTP_PORT`, loopback unless
`HIRESTREAM_SERVING_HTTP_BIND` says otherwise (then only with `HIRESTREAM_TOKEN`). It
ranks a member from this worker's active or standby copy of the member's state, and
asks the worker that owns the member when it holds neither
(`serving.online.rank_forwarding`).
"""
from __future__ import annotations

import logging
import threading
import time

from faust.contrib.asgi import AsgiService

from models.torch_threads import thread_counts
from serving.online.engine import EngineConfig, MatchingEngine, load_encoder
from serving.online.gc_pauses import GcPauses
from serving.online.http_api import check_bind, create_app
from serving.online.rank_forwarding import Forwarded, RankForwarder
from serving.online.replica import IndexReplica
from serving.online.results import result_event_id
from serving.online.scorer import make_scorer
from serving.online.job_state_warmer import JobStateWarmer
from serving.online.scoring import Overloaded, ScoringPolicy, ScoringService
from serving.online.settings import get_serving_settings
from streams.app import app, member_state, settings, source_topics
from streams.decoding import decode_or_dead_letter
from streams.member_reads import placement, self_url
from streams.schemas import ScoreCompleted, ScoreRequested, serialize
from streams.send_now import send_now
from streams.state import MemberState
from streams.topics import JOBS, SCORE_REQUESTS, SCORE_RESULTS

log = logging.getLogger(__name__)

_serving = get_serving_settings()
engine = MatchingEngine(
    make_scorer(_serving.scorer),
    EngineConfig(retrieve_k=_serving.retrieve_k, history_max_items=settings.history_max_items),
    retrievals={"default": _serving.retrieval},
    keep_members=False,  # member state lives in the worker's table
    embedder=load_encoder(_serving.encoder),
)
replica = IndexReplica.for_serving(engine, settings.bootstrap, settings.app_id)
if hasattr(engine.scorer, "ranker"):
    engine.scorer.ranker.job_state_bytes = _serving.job_state_mb << 20


def _member_state(member_id: str) -> MemberState | None:
    stored = member_state.get(member_id)
    return MemberState.from_dict(stored) if stored else None


def _tables_recovered() -> bool:
    return app.tables.recovery.completed.is_set()


_job_states_warm = threading.Event()  # set once the jobs posted before the start have states (or nothing to warm)
_long_lived_frozen = threading.Event()  # set once everything loaded before ready is out of the collector's walks
FROZEN_CHECK = "long_lived_objects_frozen"
service = ScoringService(engine, member_state=_member_state, replica=replica,
                         policy=ScoringPolicy.from_settings(_serving),
                         ready_checks={"worker_tables_recovered": _tables_recovered,
                                       "job_states_warm": _job_states_warm.is_set,
                                       FROZEN_CHECK: _long_lived_frozen.is_set})
gc_pauses = GcPauses()
service.metrics.watch_gc(gc_pauses)


def _topic_behind(topic: str, done: str = "read") -> int | None:
    """Messages on this worker's partitions of `topic` not yet read (`done="read"`) or
    not yet applied and committed (`"committed"`); None before the first fetch has told
    the high watermark."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return None
    behind = 0
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        end = consumer.highwater(tp)
        if end is None:
            return None
        if done == "read":  # faust keeps the last offset read, Kafka commits the next one
            read = consumer._read_offset.get(tp)
            upto = read + 1 if read is not None else 0
        else:
            upto = consumer._committed_offset.get(tp) or 0
        behind += max(0, end - upto)
    return behind


service.metrics.watch_lag("score_requests", lambda: _topic_behind(SCORE_REQUESTS.name))


async def answer(request: ScoreRequested) -> ScoreCompleted:
    result = await service.score(request.payload, request.event_time.timestamp(), via="kafka")
    return ScoreCompleted(event_id=result_event_id(request.event_id), event_time=request.event_time,
                          payload=result)


async def _process_score_requests(stream):
    async for event in stream.events():
        typed = await decode_or_dead_letter(event)
        if typed is None:
            continue
        completed = await answer(typed)
        # The client waits on this one record: it leaves now, not after the changelogs' linger.
        await send_now(source_topics[SCORE_RESULTS.name], typed.payload.member_id.encode(), serialize(completed))


if _serving.kafka_requests:
    process_score_requests = app.agent(source_topics[SCORE_REQUESTS.name], name="process_score_requests",
                                       concurrency=_serving.kafka_concurrency)(_process_score_requests)


# ---- the HTTP API --------------------------------------------------------------------------


def _member_copy(member_id: str) -> str | None:
    """Which copy of the member's `member-state` partition this worker holds: "active",
    "standby" or None (the member reads' placement: the same partition, the same answer)."""
    here = placement(member_id).here
    return here.value if here is not None else None


_forwarder = RankForwarder(lambda: app.http_client, self_url, timeout=settings.forward_timeout)


async def _forward(member_id: str, body: bytes, authorization: str | None) -> Forwarded | None:
    """The answer of the worker holding the member's partition active, when that is not this one."""
    owner = placement(member_id).owner
    if owner is None or owner == self_url():
        return None
    return await _forwarder(owner, body, authorization)


_token = settings.token.get_secret_value() if settings.token else None
api = create_app(service, token=_token, member_copy=_member_copy, forward=_forward)

if _serving.http_port:
    check_bind(_serving.http_bind, _token)

    @app.service
    class ScoringHttpService(AsgiService):
        """The HTTP API on the worker's loop: started with the worker, stopped with it."""

        asgi_app = api
        host = _serving.http_bind
        port = _serving.http_port
        opentelemetry = False
        uvicorn_options = {"lifespan": "off", "log_level": "warning", "access_log": False,
                           "limit_concurrency": _serving.http_max_connections, "timeout_keep_alive": 5}


@app.task
async def start_replica() -> None:
    replica.start()


# A ranker that reads jobs alone (`models.job_states`): its job states are computed as the
# catalog receives jobs, between requests (serving/online/job_state_warmer.py).
WARM_EVERY_S = 0.25
WARM_BATCH_STARTING, WARM_BATCH = 32, 4  # jobs a model call: ~1.6 s before ready, ~0.2 s after
_states = getattr(getattr(engine.scorer, "ranker", None), "job_states", None)
warmer = (JobStateWarmer(engine.catalog, engine.scorer.warm, _states, version=lambda: engine.applied)
          if _states is not None else None)
if warmer is None:
    _job_states_warm.set()


_jobs_applied_at: float | None = None  # when this worker had first committed every job event it read


def _catalog_in_replica() -> bool:
    """This worker has applied and committed every job event on its partitions (the
    commit waits for their catalog changelog records, `streams.tables`) and the replica
    has since read the changelog to its end. Jobs posted before the start are then in
    the replica's catalog."""
    global _jobs_applied_at
    if _jobs_applied_at is None:
        if _topic_behind(JOBS.name, done="committed") != 0:
            return False
        _jobs_applied_at = time.monotonic()
    return replica.lag == 0 and replica.lag_at > _jobs_applied_at


@app.timer(interval=WARM_EVERY_S)
async def warm_job_states() -> None:
    """Computes the states of open jobs the cache lacks, a few at a time and only while no
    request waits; /readyz says `job_states_warm` once this worker has applied the jobs
    posted before its start and every open job has its states."""
    if warmer is None or not replica.ready or service.depth:
        return
    starting = not _job_states_warm.is_set()
    batch = warmer.pending(WARM_BATCH_STARTING if starting else WARM_BATCH)
    if not batch:
        if starting and _catalog_in_replica():
            _job_states_warm.set()
            log.info("job states warm: %d jobs computed in %.1f s", warmer.jobs, warmer.seconds)
        return
    try:
        await service.run_model(warmer.warm, batch)
    except Overloaded:  # requests came first; the next round tries again
        pass
    except Exception:  # marked done all the same: requests compute what they meet
        log.exception("computing %d jobs' states failed; they are computed at their first request", len(batch))


@app.timer(interval=0.5)
async def freeze_long_lived_objects() -> None:
    """Once every other readiness check holds: a last full collection, then what the
    worker holds out of the collector's reach (serving/online/gc_pauses.py). It runs
    before /readyz says ready, so its one long pause falls before the first request."""
    if _long_lived_frozen.is_set():
        return
    if all(ok for name, ok in service.readiness().items() if name != FROZEN_CHECK):
        frozen = gc_pauses.freeze()
        _long_lived_frozen.set()
        log.info("%d objects frozen out of the garbage collector's walks (%s before)", frozen, gc_pauses.at_freeze)


@app.page("/serving/")
async def serving_view(web, request):
    return web.json({"replica_ready": replica.ready, "replica_start_offsets": replica.start_offsets,
                     "replica_lag": replica.lag, "replica_read": replica.read, "replica_invalid": replica.invalid,
                     "jobs_open": sum(1 for e in engine.catalog.values() if e.open), "hires": engine.links.hires,
                     "link_applies": engine.links.applies,
                     "scorer": engine.model_id, "replica_error": repr(replica.error) if replica.error else None,
                     "scoring_queue_depth": service.depth, "job_states": _job_state_figures(),
                     "torch_threads": thread_counts(), "gc": gc_pauses.figures(),
                     "http": f"http://{_serving.http_bind}:{_serving.http_port}" if _serving.http_port else None})


def _job_state_figures() -> dict | None:
    """The ranker's cached job states (`models.job_states`): jobs held, MiB, hits and misses."""
    if warmer is None:
        return None
    states = warmer.states
    return {"warm": _job_states_warm.is_set(), "warmed": warmer.figures(), "jobs": len(states),
            "mib": round(states.bytes / 2 ** 20, 1), "hits": states.hits, "misses": states.misses,
            "computed_ahead": states.warmed}


def register_serving() -> None:
    """Importing this module declares the agent, the replica task, the HTTP service and
    the /serving/ page; this function exists so call sites read as what they mean."""
