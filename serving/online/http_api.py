"""The scoring service over HTTP (FastAPI; OpenAPI docs at /docs and /openapi.json).

    POST /v1/rank     {"member_id", "surface", "query", "task", "k", "deadline_ms"}
                      -> a ScoreResult: ranked jobs with scores and reasons, model id,
                         timings per stage (ms), status ok | partial | expired | shed | error
    POST /v1/score    SGLang's scoring API: {"query", "items", "label_token_ids",
                      "apply_softmax", "item_first"} -> {"scores": [[p per label] per item]}
    GET  /healthz     the process answers
    GET  /readyz      200 once the index replica has caught up and the model is loaded
                      (and the worker's tables are recovered), else 503; says which
    GET  /metrics     Prometheus text (serving.online.service_metrics)

`/v1/rank` goes through the same `ScoringService.score` as a Kafka request; its
deadline counts from arrival: when the request reached this app, stamped by the
outermost middleware (`StampArrival`) before its body is read, the token checked or
the body validated. On a loaded worker those steps wait on its loop like everything
else; counted from the handler, that wait fell outside the deadline and a request
could be scored late as if just sent. (Time before the app sees the request, in the
kernel's queues, is still outside: only the client knows it.) HTTP status follows the result's status: 200 for ok and
partial, 503 with `Retry-After` for shed, 504 for expired, 500 for error; the body is
the result either way, so a client reads one shape.

A worker ranks a member from its own copy of the member's state: the partition it owns
("active") or a standby copy restored from the owner's changelog ("standby", behind the
owner by the changelog's lag); the `X-Hirestream-Copy` header says which. With standby
copies of every partition (`HIRESTREAM_STANDBY_REPLICAS` = workers - 1) every worker
answers every member from its own copy; a member of which a worker holds no copy is
asked of the worker that owns it (`serving.online.rank_forwarding`; the answer carries
`X-Hirestream-Forwarded-By`), and is a 503 only when that worker cannot answer.

With `HIRESTREAM_TOKEN` set, every path but /healthz, /readyz and the API docs needs
`Authorization: Bearer <token>` (401 otherwise), checked by the same function as the
worker's read API (`streams.web_auth.bearer_matches`) in a middleware, so a route added
later cannot forget it. The server binds loopback unless told otherwise, and refuses
another address without a token (`check_bind`).
"""
from __future__ import annotations

import uuid
from typing import Annotated, Awaitable, Callable, Literal, Union

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from serving.online.rank_forwarding import Forwarded
from serving.online.scoring import Overloaded, ScoringService
from serving.online.service_metrics import CONTENT_TYPE
from streams.schemas import LONG_TEXT_MAX, MAX_ITEMS, Id, ScoreRequest, ScoreResult, ScoreStatus, ShortText, Surface
from streams.settings import is_loopback
from streams.web_auth import UNAUTHORIZED, UNAUTHORIZED_HEADERS, bearer_matches
from streams.web_headers import COPY, FORWARDED_BY

ARRIVED = "hirestream.arrived"  # the scope key `StampArrival` writes
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
HTTP_STATUS = {ScoreStatus.OK: 200, ScoreStatus.PARTIAL: 200, ScoreStatus.SHED: 503, ScoreStatus.EXPIRED: 504,
               ScoreStatus.ERROR: 500}

# Bounds of a body: a request can never hold more than this in memory. A POST must say
# its length (h11 holds it to that), so an oversized one is refused before it is read.
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_QUERY_CHARS = 20_000
MAX_QUERY_TOKENS = 4096
MAX_ITEM_TOKENS = 1024
MAX_LABELS = 16


class RankBody(BaseModel):
    """A ranking request: the fields of a Kafka `score.requested` payload."""

    model_config = ConfigDict(extra="forbid")

    member_id: Id
    surface: Surface = Surface.RECOMMENDATIONS
    query: ShortText | None = None
    task: ShortText = "apply"
    k: int = Field(10, ge=1, le=MAX_ITEMS)
    deadline_ms: int = Field(1000, ge=1, le=60_000, description="from arrival; past it the answer is partial")
    request_id: Id | None = Field(None, description="echoed in the result; generated when absent")


QueryText = Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
QueryIds = Annotated[list[int], Field(max_length=MAX_QUERY_TOKENS)]
ItemText = Annotated[str, Field(min_length=1, max_length=LONG_TEXT_MAX)]
ItemIds = Annotated[list[int], Field(min_length=1, max_length=MAX_ITEM_TOKENS)]


class ScoreBody(BaseModel):
    """SGLang's `/v1/score` request: p(label token next | query + item) per item. Texts
    or token ids; every size has a bound, so one body cannot exhaust memory."""

    model_config = ConfigDict(extra="forbid")

    query: Union[QueryText, QueryIds]
    items: Union[ItemText, Annotated[list[ItemText], Field(max_length=MAX_ITEMS)],
                 Annotated[list[ItemIds], Field(max_length=MAX_ITEMS)]]
    label_token_ids: list[int] = Field(..., min_length=1, max_length=MAX_LABELS)
    apply_softmax: bool = False  # normalize over the label tokens only
    item_first: bool = False  # item + query instead of query + item
    model: str | None = None  # accepted for compatibility; this server serves one model


class ScoreResponse(BaseModel):
    scores: list[list[float]]  # per item, in label_token_ids' order
    model: str
    object: Literal["scoring"] = "scoring"


def check_bind(bind: str, token: str | None) -> None:
    """Refuse an address other machines can reach unless a token guards it."""
    if token is None and not is_loopback(bind):
        raise ValueError(f"HIRESTREAM_SERVING_HTTP_BIND={bind!r} lets other machines rank members: "
                         "set HIRESTREAM_TOKEN too")


def create_app(service: ScoringService, *, token: str | None = None,
               member_copy: Callable[[str], str | None] | None = None,
               forward: Callable[[str, bytes, str | None], Awaitable[Forwarded | None]] | None = None) -> FastAPI:
    """The API over `service`. `member_copy(member_id)`: which copy of the member's state
    this process holds, "active" (it owns the partition) or "standby" (restored from the
    owner's changelog, at most its lag behind), or None; without it every member is here.
    `forward(member_id, body, authorization)`: the owner's answer for a member held
    nowhere here (None when it cannot give one)."""
    api = FastAPI(title="hirestream scoring", version="1",
                  description="Rank jobs for a member (the 360Brew-style ranker over the live job index), "
                              "score items against a prompt prefix, readiness and metrics.")
    bearer = [Depends(HTTPBearer(auto_error=False, description="HIRESTREAM_TOKEN, when the server has one"))]
    api.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    if token:
        @api.middleware("http")
        async def require_token(request: Request, call_next):
            if request.url.path not in OPEN_PATHS and not bearer_matches(request.headers.get("authorization"), token):
                return JSONResponse(UNAUTHORIZED, status_code=401, headers=UNAUTHORIZED_HEADERS)
            return await call_next(request)

    @api.post("/v1/rank", response_model=ScoreResult, dependencies=bearer,
              responses={503: {"model": ScoreResult, "description": "shed under load, or no copy of the "
                                                                     "member's state is on this worker"},
                         504: {"model": ScoreResult, "description": "expired before it could be scored"}})
    async def rank(body: RankBody, raw: Request) -> JSONResponse:
        """Ranked jobs for a member, with scores, reasons, the model id and timings."""
        arrived = raw.scope.get(ARRIVED, service.clock())
        copy = None
        # Where the member is can be asked only once the worker is ready: until its tables
        # are recovered its assignment may change, and a table read could find a partition
        # it no longer holds. Not ready by the deadline: the scoring path says `expired`.
        if member_copy is not None and await service.wait_ready(arrived + body.deadline_ms / 1000.0) is None:
            copy = member_copy(body.member_id)
        if member_copy is not None and copy is None and all(service.readiness().values()):
            if forward is not None and FORWARDED_BY not in raw.headers:
                answer = await forward(body.member_id, await raw.body(), raw.headers.get("authorization"))
                if answer is not None:
                    return Response(answer.body, status_code=answer.status, headers=answer.headers,
                                    media_type="application/json")
            return JSONResponse({"error": f"member {body.member_id!r} is held by another worker, which could "
                                          "not be asked, and this one keeps no standby copy of it: retry, raise "
                                          "HIRESTREAM_STANDBY_REPLICAS, or send a score request through Kafka"},
                                status_code=503, headers={"Retry-After": "1"})
        request = ScoreRequest(request_id=body.request_id or uuid.uuid4().hex, member_id=body.member_id,
                               surface=body.surface, query=body.query, task=body.task, k=body.k,
                               deadline_ms=body.deadline_ms)
        result = await service.score(request, arrived, via="http")
        headers = {"Retry-After": "1"} if result.status is ScoreStatus.SHED else {}
        if copy is not None:
            headers[COPY] = copy
        return JSONResponse(result.model_dump(mode="json"), status_code=HTTP_STATUS[result.status], headers=headers)

    @api.post("/v1/score", response_model=ScoreResponse, dependencies=bearer,
              responses={501: {"description": "the serving scorer is not a language model"},
                         503: {"description": "shed under load"}})
    async def score(body: ScoreBody) -> JSONResponse:
        """p(label token | query + item) per item (SGLang's scoring API): the query is
        encoded once and every item is a segment over its cache."""
        ranker = getattr(service.scorer, "ranker", None)
        if ranker is None:
            return JSONResponse({"error": f"the serving scorer {service.model_id!r} is not a language model; "
                                          "serve a ranker (HIRESTREAM_SERVING_SCORER=ranker:<dir>)"},
                                status_code=501)
        items = [body.items] if isinstance(body.items, str) else list(body.items)
        try:
            probs = await service.run_model(ranker.label_probabilities, body.query, items, body.label_token_ids,
                                            body.apply_softmax, body.item_first)
        except Overloaded as err:
            service.metrics.requests.labels(via="http_score", status=ScoreStatus.SHED.value).inc()
            return JSONResponse({"error": str(err)}, status_code=503, headers={"Retry-After": "1"})
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        service.metrics.requests.labels(via="http_score", status=ScoreStatus.OK.value).inc()
        return JSONResponse(ScoreResponse(scores=probs.tolist(), model=service.model_id).model_dump())

    @api.get("/healthz")
    async def healthz() -> dict:
        """The process answers (liveness); open without the token."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready to rank: the index replica caught up, the model loaded (and the
        worker's tables recovered). 503 with the same body until then."""
        checks = service.readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @api.get("/metrics", dependencies=bearer)
    async def metrics() -> Response:
        """Prometheus text: requests by status, latency per stage, queue depth, model id, lag."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    # Added last, so outermost of ours: the stamp is taken before any other middleware runs.
    api.add_middleware(StampArrival, clock=service.clock)
    return api


class StampArrival:
    """Notes when a request reached the app (epoch s, on the service's clock) in its
    scope, before anything else reads it: where an HTTP request's deadline starts."""

    def __init__(self, app, clock: Callable[[], float]):
        self.app = app
        self.clock = clock

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope[ARRIVED] = self.clock()
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses a body over `max_bytes` (413), or one that does not say its length (411),
    before the application reads it: the API's memory stays bounded by connections x
    `max_bytes` whatever a client sends."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None or not length.isdigit():
                return await JSONResponse({"error": "a body must come with its Content-Length"},
                                          status_code=411)(scope, receive, send)
            if int(length) > self.max_bytes:
                return await JSONResponse({"error": f"body of {int(length)} bytes; at most {self.max_bytes}"},
                                          status_code=413)(scope, receive, send)
        await self.app(scope, receive, send)
