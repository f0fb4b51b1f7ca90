"""A Python client: produce events, ask for a ranking over Kafka or HTTP, read the reply.

    from serving.client import Client
    with Client(kafka="127.0.0.1:19092") as hs:          # or Client(http="http://127.0.0.1:6067", token=...)
        print(hs.rank("m1", k=10, timeout=5).items)     # a ScoreResult: ranked jobs with reasons

Over Kafka, `rank` sends a `score.requested` event (keyed by member, so the worker
that holds the member answers it) and reads `score-results` for its request id, from
the end of the member's partition as it was just before sending; `TimeoutError` when
no answer comes within `timeout`. The request's deadline is the timeout unless given:
an answer the caller no longer waits for is never computed (it comes back `expired`).
Over HTTP it posts to `/v1/rank` and reads the same `ScoreResult`, whatever the HTTP
status (shed 503 and expired 504 carry one too).

`send(*events)` produces validated events to their topics (`streams.producer`), so a
test, a notebook or a simulator feeds the system through the same door as any
producer. Not thread-safe: one client per thread.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Sequence

from streams.schemas import Envelope, ScoreRequest, ScoreRequested, ScoreResult, Surface, parse
from streams.topics import SCORE_RESULTS

RESULTS_TOPIC = SCORE_RESULTS.name
MAX_BUFFERED = 1024  # others' results read while waiting for ours, kept for a later `result` call


class HttpError(RuntimeError):
    """An HTTP answer that is not a result (401, 422, ...), with its status and body."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, kafka: str | None = None, http: str | None = None, token: str | None = None):
        if not kafka and not http:
            raise ValueError("a client needs a Kafka bootstrap address (kafka=), an HTTP base URL (http=), or both")
        self.kafka = kafka
        self.http = http.rstrip("/") if http else None
        self.token = token
        self._producer = None
        self._consumer = None
        self._partitions: dict[int, object] = {}  # partition -> TopicPartition read so far
        self._buffered: dict[str, ScoreResult] = {}

    # ---- producing --------------------------------------------------------------------

    def send(self, *events: Envelope) -> None:
        """Produce validated events to their topics (keyed as the map says) and flush."""
        producer = self._events_producer()
        for event in events:
            producer.send(event)
        producer.flush()

    # ---- ranking ----------------------------------------------------------------------

    def rank(self, member_id: str, *, k: int = 10, surface: Surface | str = Surface.RECOMMENDATIONS,
             query: str | None = None, task: str = "apply", timeout: float = 5.0, deadline_ms: int | None = None,
             via: str | None = None) -> ScoreResult:
        """The member's ranked jobs, over HTTP when the client has a URL (or via="http"),
        else over Kafka."""
        via = via or ("http" if self.http else "kafka")
        deadline_ms = deadline_ms or max(1, min(60_000, int(timeout * 1000)))
        request = ScoreRequest(request_id=uuid.uuid4().hex, member_id=member_id, surface=Surface(surface),
                               query=query, task=task, k=k, deadline_ms=deadline_ms)
        if via == "http":
            return self._rank_http(request, timeout)
        if via == "kafka":
            self.request(request)
            return self.result(request.request_id, member_id, timeout)
        raise ValueError(f"via must be 'kafka' or 'http', not {via!r}")

    def request(self, request: ScoreRequest) -> str:
        """Send a score request over Kafka without waiting; its id. Read the answer with
        `result`: the member's result partition is read from its end as of now."""
        self.follow(request.member_id)
        self.send(ScoreRequested(event_id=uuid.uuid4().hex, event_time=datetime.now(timezone.utc), payload=request))
        return request.request_id

    def result(self, request_id: str, member_id: str, timeout: float = 5.0) -> ScoreResult:
        """The result of a request sent with `request` (or by anyone, after this client
        began following the member's partition)."""
        self.follow(member_id)
        give_up = time.monotonic() + timeout
        while request_id not in self._buffered:
            left = give_up - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no score result for request {request_id} (member {member_id}) within "
                                   f"{timeout:.1f} s on {RESULTS_TOPIC}")
            for messages in self._consumer.poll(timeout_ms=max(1, int(min(left, 0.5) * 1000))).values():
                for m in messages:
                    payload = parse(RESULTS_TOPIC, m.value).payload
                    self._buffered[payload.request_id] = payload
                    if len(self._buffered) > MAX_BUFFERED:
                        self._buffered.pop(next(iter(self._buffered)))
        return self._buffered.pop(request_id)

    # ---- HTTP -------------------------------------------------------------------------

    def _rank_http(self, request: ScoreRequest, timeout: float) -> ScoreResult:
        body = request.model_dump(mode="json")
        status, text = self._post("/v1/rank", body, timeout)
        try:
            return ScoreResult.model_validate_json(text)
        except ValueError:
            raise HttpError(status, text) from None

    def score_items(self, query: str | Sequence[int], items: Sequence[str] | Sequence[Sequence[int]],
                    label_token_ids: Sequence[int], apply_softmax: bool = False, timeout: float = 30.0) -> list:
        """`POST /v1/score` (SGLang's shape): per item, p(each label token | query + item)."""
        status, text = self._post("/v1/score", {"query": query, "items": list(items),
                                                "label_token_ids": list(label_token_ids),
                                                "apply_softmax": apply_softmax}, timeout)
        if status != 200:
            raise HttpError(status, text)
        return json.loads(text)["scores"]

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """(status, body) of `GET <http>/<path>` with the token: /readyz, /metrics."""
        return self._call(urllib.request.Request(self._url(path), method="GET"), timeout)

    def post(self, path: str, body: dict, timeout: float = 5.0) -> tuple[int, str]:
        """(status, body) of `POST <http>/<path>` with a JSON body and the token."""
        return self._post(path, body, timeout)

    def _post(self, path: str, body: dict, timeout: float) -> tuple[int, str]:
        request = urllib.request.Request(self._url(path), data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        return self._call(request, timeout)

    def _url(self, path: str) -> str:
        if not self.http:
            raise ValueError("this client has no HTTP URL (Client(http=...))")
        return self.http + path

    def _call(self, request: urllib.request.Request, timeout: float) -> tuple[int, str]:
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    # ---- Kafka plumbing ---------------------------------------------------------------

    def _events_producer(self):
        if self._producer is None:
            if not self.kafka:
                raise ValueError("this client has no Kafka address (Client(kafka=...))")
            from streams.producer import EventProducer

            self._producer = EventProducer(self.kafka)
        return self._producer

    def follow(self, member_id: str) -> None:
        """Read the member's results from now on: its `score-results` partition from its
        current end (once per partition; those already followed keep their positions).
        `request` does it before sending; call it yourself before another producer
        (kcat, a service) sends a request whose result you will read with `result`."""
        from kafka import TopicPartition
        from kafka.partitioner import murmur2

        from streams import kafka_clients

        if self._consumer is None:
            if not self.kafka:
                raise ValueError("this client has no Kafka address (Client(kafka=...))")
            self._consumer = kafka_clients.consumer(self.kafka, group_id=None, enable_auto_commit=False)
        n = len(self._consumer.partitions_for_topic(RESULTS_TOPIC) or ())
        if n == 0:
            raise RuntimeError(f"topic {RESULTS_TOPIC!r} does not exist on {self.kafka}")
        partition = (murmur2(member_id.encode()) & 0x7FFFFFFF) % n  # the Java client's (and faust's) choice
        if partition in self._partitions:
            return
        positions = {tp: self._consumer.position(tp) for tp in self._partitions.values()}
        tp = TopicPartition(RESULTS_TOPIC, partition)
        self._partitions[partition] = tp
        self._consumer.assign(list(self._partitions.values()))
        for old, offset in positions.items():
            self._consumer.seek(old, offset)
        self._consumer.seek_to_end(tp)
        self._consumer.position(tp)  # resolve "the end" now, before the request is sent

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
