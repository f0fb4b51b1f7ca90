"""The one scoring path: request -> member state -> candidates -> ranker -> result.

    service = ScoringService(engine, member_state=lookup, replica=replica)
    result = await service.score(request, sent_at=t, via="http")   # a ScoreResult; never raises

The Kafka scoring agent (`serving.online.scoring_agent`) and the HTTP API (`serving.online.http_api`)
both answer through `ScoringService.score`; replay and `MatchingEngine.score` share its
pure pieces (`ranked_items`, `top_k_order`) and the engine's retrieval, without the
queue (replay runs in event time, where no one waits).

Stages, each timed into the result's `timings_ms` (ms) and `/metrics` (seconds):

    arrival   already past its deadline (sent_at + deadline_ms)  -> expired, unscored
    ready     waits for the index replica (and the worker's tables), up to the deadline
                                                                  -> expired, unscored
    admit     the overload policy below                           -> shed, unscored
    state     the member's profile and history (the worker's table, or the engine's)
    retrieve  candidates from the job index, with their reasons
    queue     waits for the batcher: members that arrive within `batch_window_ms` of
              each other are ranked in one model call (each prefix once, every
              candidate a segment over its cache: `Ranker.score_many`)
    rank      the model call
    then the top k with reasons                                   -> ok, or partial

The overload policy, by the number of requests admitted and not yet answered (the
depth) when a request arrives:

    depth <  degrade_at              rank `retrieve_k` candidates        -> ok
    degrade_at <= depth < queue_max  rank only the index's best
                                     `degraded_k` (less model work)      -> partial
    depth >= queue_max               not scored, answered at once        -> shed
    the deadline comes before the ranking is done: the index's order of
    the candidates, and the model call skips (or discards) the request  -> partial

`error` says why for every status but ok. Memory stays bounded: at most `queue_max`
requests of at most `retrieve_k` candidates each are held, and a model call holds at
most `max_batch` members. One model thread runs the calls one after another: on a CPU
two concurrent passes only fight over the same cores (`models.torch_threads`: which
thread's torch gets them).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from models.torch_threads import enter_model_thread
from serving.online.results import score_result, scored_item
from serving.online.scorer import Candidate, RankJob, Scorer, score_batch
from serving.online.service_metrics import ServiceMetrics
from serving.online.settings import ServingSettings
from streams.schemas import ScoredItem, ScoreRequest, ScoreResult, ScoreStatus
from streams.state import MemberState

log = logging.getLogger(__name__)
READY_POLL_S = 0.02  # how often a non-blocking readiness check is read while a request waits on it


# ---- pure pieces, shared with MatchingEngine.score and replay -------------------------------


def top_k_order(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first; ties keep candidate (retrieval) order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]


def ranked_items(candidates: Sequence[Candidate], reasons: Sequence[Sequence[str]],
                 scores: Sequence[float] | np.ndarray, k: int) -> list[ScoredItem]:
    """The top k candidates as result items, each with its score and reasons."""
    return [scored_item(candidates[i].job.job_id, scores[i], reasons[i] if i < len(reasons) else [])
            for i in top_k_order(scores, k)]


def retrieval_scores(candidates: Sequence[Candidate]) -> np.ndarray:
    return np.asarray([c.retrieval_score for c in candidates], dtype=np.float64)


# ---- the policy ------------------------------------------------------------------------------


def _setting_default(name: str):
    return ServingSettings.model_fields[name].default


@dataclass(frozen=True)
class ScoringPolicy:
    """The batching and overload knobs of ServingSettings (their one home: defaults and
    documentation), as the service reads them; tests build their own."""
    batch_window_ms: float = _setting_default("batch_window_ms")
    max_batch: int = _setting_default("max_batch")
    queue_max: int = _setting_default("queue_max")
    degrade_at: int = _setting_default("degrade_at")
    degraded_k: int = _setting_default("degraded_k")

    @classmethod
    def from_settings(cls, s: ServingSettings) -> "ScoringPolicy":
        return cls(**{name: getattr(s, name) for name in cls.__dataclass_fields__})


# ---- dynamic batching ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    scores: np.ndarray
    queued_s: float  # from submit to the start of its model call
    rank_s: float  # the model call
    batch_members: int


class DynamicBatcher:
    """Jobs submitted within `window_s` of the first one waiting (up to `max_batch`) go
    to the scorer in one call, on one model thread. A job whose future is already done
    (its request was answered at its deadline) is left out of the call."""

    def __init__(self, scorer: Scorer, window_s: float, max_batch: int,
                 on_batch: Callable[[int], None] | None = None):
        self.scorer = scorer
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring-model",
                                           initializer=enter_model_thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[tuple[RankJob, asyncio.Future, float]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def submit(self, job: RankJob) -> asyncio.Future:
        """A future of the job's `Ranked`, or of the scorer's exception."""
        loop = self._running_on()
        fut = loop.create_future()
        self._waiting.append((job, fut, time.perf_counter()))
        self._arrived.set()
        return fut

    async def run(self, fn: Callable[..., Any], *args) -> Any:
        """Other model work (`/v1/score`) on the same model thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _running_on(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop (a new one after `asyncio.run` in tests starts afresh)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._waiting.clear()
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._drain(), name="scoring-batcher")
        return loop

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch = [self._waiting.popleft()]
            window_ends = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                while self._waiting and len(batch) < self.max_batch:
                    batch.append(self._waiting.popleft())
                left = window_ends - loop.time()
                if len(batch) >= self.max_batch or left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    pass  # the window closed; take whatever arrived meanwhile, then go
            live = [(job, fut, t) for job, fut, t in batch if not fut.done()]
            if not live:
                continue
            started = time.perf_counter()
            outs = await loop.run_in_executor(self.executor, self._score, [job for job, _, _ in live])
            rank_s = time.perf_counter() - started
            if self.on_batch is not None:
                self.on_batch(len(live))
            for (_, fut, submitted), out in zip(live, outs):
                if fut.done():  # answered at its deadline while the model ran
                    continue
                if isinstance(out, BaseException):
                    fut.set_exception(out)
                else:
                    fut.set_result(Ranked(out, started - submitted, rank_s, len(live)))

    def _score(self, jobs: list[RankJob]) -> list[np.ndarray | Exception]:
        """The scorer's answers; when the batch call fails, each job alone, so one bad
        request (a member without a profile, say) fails only itself."""
        try:
            return list(score_batch(self.scorer, jobs))
        except Exception as err:  # the scorer is a plug-in: its failure is the request's answer
            if len(jobs) == 1:
                return [err]
        out: list[np.ndarray | Exception] = []
        for job in jobs:
            try:
                out.append(score_batch(self.scorer, [job])[0])
            except Exception as err:
                out.append(err)
        return out


# ---- the service -----------------------------------------------------------------------------


class ScoringService:
    """Answers score requests through the stages in the module docstring.

    engine        a `MatchingEngine`: the job index and catalog (the replica keeps it
                  current) and the scorer that ranks
    member_state  member_id -> MemberState or None (the worker's `member-state`
                  table; `engine.member` in process)
    replica       has `ready` and `wait_ready(timeout)`; None: always ready
    ready_checks  more conditions that must hold before a request is scored (name ->
                  a cheap, non-blocking check), waited on up to the deadline
    """

    def __init__(self, engine, *, member_state: Callable[[str], MemberState | None] | None = None,
                 replica=None, policy: ScoringPolicy | None = None, metrics: ServiceMetrics | None = None,
                 ready_checks: Mapping[str, Callable[[], bool]] | None = None, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.scorer: Scorer | None = engine.scorer
        self.model_id = engine.model_id
        self.member_state = member_state or engine.member
        self.replica = replica
        self.policy = policy or ScoringPolicy()
        self.metrics = metrics or ServiceMetrics(self.model_id)
        self.ready_checks = dict(ready_checks or {})
        self.clock = clock
        self.depth = 0  # requests admitted and not yet answered
        self.batcher = DynamicBatcher(self.scorer, self.policy.batch_window_ms / 1000.0, self.policy.max_batch,
                                      on_batch=self.metrics.batch.observe) if self.scorer is not None else None
        self.metrics.watch(self.metrics.queue_depth, lambda: self.depth)
        self.metrics.watch(self.metrics.ready, lambda: all(self.readiness().values()))
        if replica is not None:
            self.metrics.watch_lag("index_replica", lambda: replica.lag)

    def readiness(self) -> dict[str, bool]:
        """What `/readyz` reports: every condition for answering, by name."""
        out = {"index_replica_caught_up": self.replica is None or bool(self.replica.ready),
               "model_loaded": self.scorer is not None}
        out.update({name: bool(check()) for name, check in self.ready_checks.items()})
        return out

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    async def run_model(self, fn: Callable[..., Any], *args) -> Any:
        """Other model work (`/v1/score`), under the same admission bound and on the same
        model thread as the rankings. Raises `Overloaded` when the queue is full."""
        if self.depth >= self.policy.queue_max:
            raise Overloaded(self.depth, self.policy.queue_max)
        if self.batcher is None:
            raise RuntimeError("this service has no model")
        self.depth += 1
        try:
            return await self.batcher.run(fn, *args)
        finally:
            self.depth -= 1

    async def score(self, request: ScoreRequest, sent_at: float, via: str = "kafka") -> ScoreResult:
        """The request's result; `sent_at` (epoch s) starts its deadline and is the
        ranker's `now` (a Kafka request's event time; an HTTP request's arrival)."""
        answer = _Answer(self, request, via)
        deadline = sent_at + request.deadline_ms / 1000.0
        late = self.clock() - deadline
        if late >= 0:
            return answer.unscored(ScoreStatus.EXPIRED, f"past its deadline on arrival ({late:.3f} s late)")
        why_not = await self.wait_ready(deadline)
        answer.lap("ready")
        if why_not is not None:
            return answer.unscored(ScoreStatus.EXPIRED, why_not)
        depth = self.depth
        if depth >= self.policy.queue_max:
            return answer.unscored(ScoreStatus.SHED, f"shed under load: {depth} requests already waiting "
                                                     f"(queue_max {self.policy.queue_max}); not scored")
        self.depth += 1
        try:
            return await self._scored(answer, sent_at, deadline, degraded=depth >= self.policy.degrade_at,
                                      depth=depth)
        except Exception as err:  # a request's failure is its answer; the service goes on
            log.exception("scoring request %s failed", request.request_id)
            return answer.unscored(ScoreStatus.ERROR, f"{type(err).__name__}: {err}")
        finally:
            self.depth -= 1

    async def wait_ready(self, deadline: float) -> str | None:
        """None once ready (the replica caught up, the checks true); why not, if the
        deadline (epoch s) came first."""
        loop = asyncio.get_running_loop()
        if self.replica is not None and not self.replica.ready:
            if not await loop.run_in_executor(None, self.replica.wait_ready, deadline - self.clock()):
                return "the job index replica had not caught up by the deadline"
        for name, check in self.ready_checks.items():
            while not check():
                if self.clock() >= deadline:
                    return f"not ready by the deadline: {name}"
                await asyncio.sleep(READY_POLL_S)  # polling a flag inside the deadline
        return None

    async def _scored(self, answer: "_Answer", sent_at: float, deadline: float, degraded: bool,
                      depth: int) -> ScoreResult:
        request = answer.request
        loop = asyncio.get_running_loop()
        state = self.member_state(request.member_id) or MemberState(member_id=request.member_id)
        answer.lap("state")
        k = min(self.policy.degraded_k, self.engine.config.retrieve_k) if degraded else self.engine.config.retrieve_k
        try:
            candidates, reasons = await loop.run_in_executor(None, functools.partial(
                self.engine.retrieve, state, request.surface, request.query, k=k, explain=True))
        except (ValueError, RuntimeError) as err:
            return answer.unscored(ScoreStatus.ERROR, f"{type(err).__name__}: {err}")
        answer.lap("retrieve")
        answer.timings["candidates"] = float(len(candidates))
        answer.timings["queue_depth"] = float(depth)
        why = (f"degraded under load: ranked the index's best {len(candidates)} candidates, not "
               f"{self.engine.config.retrieve_k} ({depth} requests waiting; degrade_at {self.policy.degrade_at})"
               if degraded else None)
        status = ScoreStatus.PARTIAL if degraded else ScoreStatus.OK
        reason = "overload" if degraded else None
        if self.batcher is None or not candidates:
            return answer.ranked(candidates, reasons, retrieval_scores(candidates), status, why, reason)
        remaining = deadline - self.clock()
        fut = self.batcher.submit(RankJob(state, candidates, request.task, sent_at, request.query)) \
            if remaining > 0 else None
        try:
            if fut is None:
                raise asyncio.TimeoutError
            ranked: Ranked = await asyncio.wait_for(fut, remaining)  # cancels the job on timeout
        except asyncio.TimeoutError:
            answer.lap("queue")
            return answer.ranked(candidates, reasons, retrieval_scores(candidates), ScoreStatus.PARTIAL,
                                 f"deadline reached before ranking finished: the index's order of "
                                 f"{len(candidates)} candidates, unranked", "deadline")
        answer.timings["queue"] = ranked.queued_s * 1e3
        answer.timings["rank"] = ranked.rank_s * 1e3
        answer.timings["batch_members"] = float(ranked.batch_members)
        return answer.ranked(candidates, reasons, ranked.scores, status, why, reason)


class Overloaded(RuntimeError):
    def __init__(self, depth: int, queue_max: int):
        super().__init__(f"shed under load: {depth} requests already waiting (queue_max {queue_max})")


class _Answer:
    """One request's timings as its stages pass, and the result it ends with (counted in
    the service's metrics)."""

    STAGES = ("ready", "state", "retrieve", "queue", "rank")

    def __init__(self, service: ScoringService, request: ScoreRequest, via: str):
        self.service = service
        self.request = request
        self.via = via
        self.started = self._last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = (now - self._last) * 1e3
        self._last = now

    def unscored(self, status: ScoreStatus, why: str) -> ScoreResult:
        return self._finish(score_result(self.request.request_id, self.request.member_id,
                                         model_id=self.service.model_id, error=why, status=status,
                                         timings_ms=self._with_total()))

    def ranked(self, candidates, reasons, scores, status: ScoreStatus, why: str | None,
               partial_reason: str | None) -> ScoreResult:
        items = ranked_items(candidates, reasons, scores, self.request.k)
        if partial_reason is not None:
            self.service.metrics.degraded.labels(reason=partial_reason).inc()
        return self._finish(score_result(self.request.request_id, self.request.member_id, items=items,
                                         model_id=self.service.model_id, timings_ms=self._with_total(),
                                         error=why, status=status))

    def _with_total(self) -> dict[str, float]:
        self.timings["total"] = (time.perf_counter() - self.started) * 1e3
        return self.timings

    def _finish(self, result: ScoreResult) -> ScoreResult:
        m = self.service.metrics
        m.requests.labels(via=self.via, status=result.status.value).inc()
        for stage in (*self.STAGES, "total"):
            if stage in self.timings:
                m.stage.labels(stage=stage).observe(self.timings[stage] / 1e3)
        return result
