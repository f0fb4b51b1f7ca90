"""End to end: score requests at a fixed open-loop rate through Kafka and through HTTP
against a real `hirestream serve` worker, for a bounded time.

    python bench/e2e.py                                   # ~5 min on 2 cores
    python bench/e2e.py --scorers bm25,ranker:/abs/artifacts/ranker-pruned --rate 40,0.5 --duration 20

The default LM row is the CPU serving tier, made by (~50 minutes on 2 cores):

    hirestream train ranker --jobs-alone --budget-minutes 25 --curve-points 0 --out artifacts/ranker-jobs-alone
    hirestream compress --teacher artifacts/ranker-jobs-alone --recipe prune-oneshot --budget-minutes 15 \
        --out artifacts/ranker-jobs-alone-prune-oneshot
    hirestream compress --teacher artifacts/ranker-jobs-alone-prune-oneshot --recipe bf16 \
        --out artifacts/ranker-jobs-alone-prune-oneshot-bf16

On a 2-core AMD EPYC with AVX512-BF16, broker, bench and worker on the same cores, that
tier's stated rate is 2.0 requests/s: p99 231-281 ms over both paths in four runs of

    python bench/e2e.py --scorers ranker:/abs/artifacts/ranker-jobs-alone-prune-oneshot-bf16 --rate 2.0 --vias kafka,http --duration 60

(docs/serving-measurements.md, runs I1-I4, with every earlier run).

Protocol (fixed before the first run):
- The project's own broker (`infra.broker.private_broker`, topics with `--partitions`
  partitions, 3 as in the test suite: a single worker's scoring path is the same, its
  start is shorter), a seeded simulated marketplace (`--members`, jobs twice that,
  `--days`) produced first, then per scorer a fresh `hirestream serve` worker (its own
  process and app id, `infra.worker_process.WorkerProcess`) with
  HIRESTREAM_SERVING_SCORER = the scorer and HIRESTREAM_SERVING_RETRIEVE_K = `--k` (50):
  the model ranks k candidates per request. The run starts once the worker has
  applied every marketplace event and `/readyz` answers 200 (replica caught up).
  Batching and overload settings are the worker's defaults (serving/online/settings.py).
- Requests: `score.requested` for members of the marketplace drawn with `--seed`,
  10 items asked, `--deadline-ms` (1000) each; over Kafka produced to score-requests
  (the project's producer, keyed by member) and read back from score-results (one
  consumer long-polling, as `serving.client` does: until 2026-12-06 it polled every
  5 ms, and its fetches and the broker's answers took a third of a core); over
  HTTP `POST /v1/rank` (plain asyncio streams, a connection per request: light enough
  that the bench is not the queue, and no request waits for another's connection).
  Arrivals are open loop: request
  i is sent at t0 + i / rate by the clock, whether or not earlier ones were answered
  (a closed loop would slow down with the service and hide overload). Latency is
  answer time minus the *scheduled* send time, so the bench's own lateness counts
  against it rather than hiding (the bench's worst lateness per run is printed).
- Service time alone: four requests one at a time (the first warms up), the median
  of the others' timings: what one request costs with nothing else waiting.
- Sustainable rate: `--rate` (one figure for every scorer, or one per scorer), else
  found per scorer: a closed loop of `--clients` (4) concurrent HTTP clients asking
  for `--calibrate-s` seconds, each request with a 60 s deadline (ranked whatever the
  model's speed; the requests in flight at the end are waited for), gives the
  worker's capacity in fully ranked results/s; the sustainable rate is `--load` (0.5)
  of it, rounded down to two significant digits. Each scorer then runs at that rate
  and at twice it, each transport for `--duration` s: with a slow model that can be
  few requests (the n column).
- After a run's last send, answers are awaited up to the deadline + 15 s; requests
  without one by then are `lost`. Shares are of requests sent. results/s: answers /
  (last answer - first scheduled send). Stage shares (the result's
  `timings_ms`: total, the time inside `ScoringService.score`, and its retrieve, rank
  and queue) are of the summed request -> result latency of the requests that
  reached retrieval; the rest of it is transport, the worker's loop and waiting to
  be read (for Kafka, consumer lag), also given per request as "outside" (p50/p99).
  The JSON names each run's 5 slowest requests with their stage timings.
- A ranker that reads jobs alone (`models.job_states`): its cache's jobs, MiB, hits
  and misses from the worker's `/serving/` page after the solo requests and each run
  (a miss is a job body computed inside a request; computed_ahead: by the warmer).
- Garbage collection: the worker's collections during each run and its longest pause
  per generation since it froze what it had loaded (`/serving/`'s `gc`).
- Memory: the worker's RSS from /proc, sampled every 0.2 s during each run; its
  peak and its growth (last - first sample of the run).
- Targets (issue 14, CPU, serving model at k = 50): p99 < 300 ms at the sustainable
  rate; at twice it the worker's memory stays bounded and shed/expired/partial are
  reported instead of latency growing without bound (the p99 of the requests sent in
  the run's last third at most 1.25x that of its first third, or within the deadline
  + 0.5 s).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
STATUSES = ("ok", "partial", "shed", "expired", "error", "refused", "lost")  # refused: HTTP 503 without a result
STAGES = ("retrieve", "rank", "queue", "total")  # total: inside ScoringService.score
ITEMS = 10  # items each request asks for
DRAIN_S = 15.0  # after the deadline, how long a run waits for its last answers
RSS_EVERY_S = 0.2


# ---- the schedule and the bookkeeping (pure; tests/test_e2e_bench.py) -----------------------


def arrivals(rate: float, duration_s: float) -> list[float]:
    """Send offsets (s from t0) of a fixed-rate open loop: i / rate for every i that
    falls inside the duration."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate}, {duration_s}")
    return [i / rate for i in range(int(np.ceil(rate * duration_s)))]


async def open_loop(offsets: Sequence[float], fire: Callable[[int, float], None],
                    clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], Awaitable] = asyncio.sleep) -> tuple[float, float]:
    """Call `fire(i, scheduled_time)` at each offset after t0 = now, by the clock only:
    `fire` must not wait for an answer (it sends, or starts a task that waits). Returns
    t0 and the worst lateness of a send (s): the bench's own limit, printed."""
    t0 = clock()
    worst = 0.0
    for i, offset in enumerate(offsets):
        at = t0 + offset
        ahead = at - clock()
        if ahead > 0:
            await sleep(ahead)  # pacing the arrivals, not waiting on anything
        worst = max(worst, clock() - at)
        fire(i, at)
    return t0, worst


@dataclass
class Outcome:
    """One request: when it was due, and what came back when (perf_counter s)."""

    scheduled: float
    answered: float | None = None
    status: str = "lost"
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float | None:
        return None if self.answered is None else (self.answered - self.scheduled) * 1e3


def summarize(outcomes: Sequence[Outcome], t0: float) -> dict:
    """The figures of one run: counts and shares by status, latency percentiles over
    every answer (and over ok answers), results/s, and the stage shares."""
    n = len(outcomes)
    answered = [o for o in outcomes if o.answered is not None]
    by_status = {s: sum(1 for o in outcomes if o.status == s) for s in STATUSES}
    lat = np.asarray([o.latency_ms for o in answered], dtype=np.float64)
    ok_lat = np.asarray([o.latency_ms for o in answered if o.status == "ok"], dtype=np.float64)
    span = max(o.answered for o in answered) - t0 if answered else 0.0
    # Latency growing without bound shows as a last third slower than the first:
    # thirds of the send window, by scheduled time.
    window = max((o.scheduled for o in outcomes), default=t0) - t0
    thirds = [np.asarray([o.latency_ms for o in answered
                          if (k * window / 3 <= o.scheduled - t0 <= (k + 1) * window / 3)], dtype=np.float64)
              for k in (0, 2)]
    reached = [o for o in answered if "retrieve" in o.timings_ms]
    total = sum(o.latency_ms for o in reached)
    stages = {s: (sum(o.timings_ms.get(s, 0.0) for o in reached) / total if total > 0 else float("nan"))
              for s in STAGES}

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if len(a) else float("nan")

    # Outside the worker's scoring: transport both ways, its event loop, consumer lag.
    outside = np.asarray([o.latency_ms - o.timings_ms["total"] for o in reached if "total" in o.timings_ms])
    slowest = sorted(reached, key=lambda o: -o.latency_ms)[:5]

    return {"sent": n, "answered": len(answered), "by_status": by_status,
            "shares": {s: (c / n if n else float("nan")) for s, c in by_status.items()},
            "results_per_s": len(answered) / span if span > 0 else float("nan"),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": float(lat.max()) if len(lat) else float("nan"),
            "ok_p99_ms": pct(ok_lat, 99), "first_third_p99_ms": pct(thirds[0], 99),
            "last_third_p99_ms": pct(thirds[1], 99), "stage_shares": stages,
            "outside_p50_ms": pct(outside, 50), "outside_p99_ms": pct(outside, 99),
            "outside_ms": [round(float(x), 1) for x in outside],  # in send order, for a closer look
            "slowest": [{"at_s": round(o.scheduled - t0, 2), "latency_ms": round(o.latency_ms, 1),
                         **{k: round(v, 1) for k, v in o.timings_ms.items()}} for o in slowest]}


def sustainable(capacity: float, load: float) -> float:
    """`load` of the measured capacity, rounded down to two significant digits."""
    x = capacity * load
    if x <= 0:
        raise ValueError(f"no capacity measured ({capacity})")
    step = 10 ** (np.floor(np.log10(x)) - 1)
    return float(np.floor(x / step) * step)


# ---- the worker and its memory ---------------------------------------------------------------


class RssSampler:
    """The worker's resident memory (MB), sampled from /proc while a run goes on."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):  # sampling period, not synchronisation
            try:
                self.samples.append(self.read())
            except (OSError, RuntimeError):
                return

    def __enter__(self) -> "RssSampler":
        self.samples.append(self.read())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.samples.append(self.read())
        except (OSError, RuntimeError):
            pass

    def figures(self) -> dict:
        return {"rss_first_mb": self.samples[0], "rss_peak_mb": max(self.samples),
                "rss_growth_mb": self.samples[-1] - self.samples[0]}


def start_worker(bootstrap: str, tmp: Path, scorer: str, k: int, n_events: int):
    """A fresh `hirestream serve` worker for `scorer`, once it has applied the
    marketplace and says it is ready; (worker, HTTP base URL)."""
    import urllib.error

    from infra.broker import free_ports
    from infra.worker_process import WorkerProcess
    from serving.client import Client

    web, http = free_ports(2)
    name = "".join(c if c.isalnum() else "-" for c in scorer.rsplit("/", 1)[-1])
    w = WorkerProcess(bootstrap, tmp / f"serve-{name}", web, command="serve", app_id=f"hs-e2e-{name}",
                      serving_scorer=scorer, serving_retrieve_k=k, serving_http_port=http,
                      broker_session_timeout=6.0, broker_heartbeat_interval=2.0, commit_interval=0.5).start()
    url = f"http://127.0.0.1:{http}"
    probe = Client(http=url)

    def ready():
        try:
            return probe.get("/readyz")[0] == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    try:
        w.wait_ready(120)
        w.wait_processed(n_events, timeout=600, desc=f"worker ({scorer}) applies the marketplace")
        w.wait_for(ready, 300, "/readyz to say ready", interval=0.25)
    except BaseException:
        w.stop()
        raise
    return w, url


# ---- the two transports -------------------------------------------------------------------


def rank_body(member_id: str, deadline_ms: int) -> dict:
    return {"member_id": member_id, "k": ITEMS, "deadline_ms": deadline_ms, "request_id": uuid.uuid4().hex}


async def post_json(host: str, port: int, path: str, body: dict, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on its own connection: (status, body). Plain asyncio streams,
    not httpx: at tens of requests per second on two shared cores httpx's own CPU
    time made the bench, not the worker, the queue (its requests started seconds
    late). A connection per request also keeps requests independent, as open-loop
    clients are."""
    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            data = json.dumps(body).encode()
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            payload = await (reader.readexactly(length) if length is not None else reader.read())
            return status, payload
        finally:
            writer.close()
    return await asyncio.wait_for(exchange(), timeout)


async def run_http(url: str, members: Sequence[str], rate: float, duration_s: float, deadline_ms: int,
                   rng: np.random.Generator) -> tuple[list[Outcome], float, float]:
    from urllib.parse import urlsplit

    where = urlsplit(url)
    offsets = arrivals(rate, duration_s)
    who = rng.choice(members, size=len(offsets))
    outcomes = [Outcome(0.0) for _ in offsets]
    pending: set[asyncio.Task] = set()
    begun = [0.0] * len(offsets)  # how late each request's task began sending (s): the bench's own lag

    async def one(i: int) -> None:
        begun[i] = time.perf_counter() - outcomes[i].scheduled
        try:
            status, payload = await post_json(where.hostname, where.port, "/v1/rank",
                                              rank_body(str(who[i]), deadline_ms), deadline_ms / 1000 + DRAIN_S)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            return  # stays lost
        now = time.perf_counter()
        try:
            result = json.loads(payload)
            outcomes[i].status, outcomes[i].timings_ms = result["status"], dict(result["timings_ms"])
        except (ValueError, KeyError, TypeError):  # uvicorn's own 503 beyond its connection limit, say
            outcomes[i].status = "refused" if status == 503 else "error"
        outcomes[i].answered = now

    def fire(i: int, at: float) -> None:
        outcomes[i].scheduled = at
        task = asyncio.get_running_loop().create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)

    t0, late = await open_loop(offsets, fire)
    if pending:
        await asyncio.wait(set(pending))  # each ends by its timeout at the latest
    return outcomes, t0, max(late, max(begun, default=0.0))


class ResultReader:
    """Reads every score-results partition from its end as of now, on a thread, and
    notes when each request id's result arrived."""

    def __init__(self, bootstrap: str):
        from kafka import TopicPartition

        from streams import kafka_clients
        from streams.topics import SCORE_RESULTS

        self.topic = SCORE_RESULTS.name
        # A long poll (kafka-python's default wait) returns as soon as a result arrives. A
        # 5 ms one made ~200 fetches a second: the bench and the broker answering them took
        # a third of a core from the 2 the worker runs on (sampled from /proc, 2026-12-06).
        self.consumer = kafka_clients.consumer(bootstrap, group_id=None, enable_auto_commit=False)
        parts = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic))]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:
            self.consumer.position(tp)  # resolve "the end" now, before anything is sent
        self.got: dict[str, tuple[float, object]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from streams.schemas import parse

        while not self._stop.is_set():
            for messages in self.consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for m in messages:
                    result = parse(self.topic, m.value).payload
                    with self.lock:
                        self.got[result.request_id] = (now, result)

    def count(self, ids: set[str]) -> int:
        with self.lock:
            return sum(1 for i in ids if i in self.got)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()


async def run_kafka(bootstrap: str, members: Sequence[str], rate: float, duration_s: float, deadline_ms: int,
                    rng: np.random.Generator) -> tuple[list[Outcome], float, float]:
    from infra.waiting import wait_for
    from streams.producer import EventProducer
    from streams.schemas import ScoreRequest, ScoreRequested

    offsets = arrivals(rate, duration_s)
    who = rng.choice(members, size=len(offsets))
    ids = [uuid.uuid4().hex for _ in offsets]
    outcomes = [Outcome(0.0) for _ in offsets]
    reader = ResultReader(bootstrap)
    producer = EventProducer(bootstrap)
    try:
        def fire(i: int, at: float) -> None:
            outcomes[i].scheduled = at
            producer.send(ScoreRequested(
                event_id=uuid.uuid4().hex, event_time=datetime.now(timezone.utc),
                payload=ScoreRequest(request_id=ids[i], member_id=str(who[i]), k=ITEMS, deadline_ms=deadline_ms)))

        t0, late = await open_loop(offsets, fire)
        producer.flush()
        wanted = set(ids)
        try:
            wait_for(lambda: reader.count(wanted) == len(wanted), deadline_ms / 1000 + DRAIN_S,
                     "every Kafka request's result", interval=0.1)
        except TimeoutError:
            pass  # the ones missing are counted as lost
    finally:
        producer.close()
        reader.close()
    for i, request_id in enumerate(ids):
        if request_id in reader.got:
            at, result = reader.got[request_id]
            outcomes[i].answered, outcomes[i].status = at, result.status.value
            outcomes[i].timings_ms = dict(result.timings_ms)
    return outcomes, t0, late


CALIBRATE_DEADLINE_MS = 60_000  # long enough that a calibration request is never cut short


async def closed_loop_capacity(url: str, members: Sequence[str], clients: int, seconds: float,
                               rng: np.random.Generator) -> float:
    """Fully ranked results/s with `clients` requests always in flight over HTTP, each
    with a deadline long enough to be ranked whatever the model's speed: clients stop
    asking after `seconds` and the requests in flight are waited for and counted, so a
    model slower than `seconds` per request still gets a figure."""
    from urllib.parse import urlsplit

    where = urlsplit(url)
    done, last = 0, 0.0
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done, last
        while time.perf_counter() < stop_at:
            _, payload = await post_json(where.hostname, where.port, "/v1/rank",
                                         rank_body(str(rng.choice(members)), CALIBRATE_DEADLINE_MS),
                                         CALIBRATE_DEADLINE_MS / 1000 + DRAIN_S)
            if json.loads(payload).get("status") == "ok":
                done, last = done + 1, time.perf_counter()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (last - started) if done else 0.0


async def alone(url: str, members: Sequence[str], n: int) -> dict:
    """`n` requests one at a time (the first warms up: the index scan's compilation and
    the model's first call happen there, not in a timed run); the median timings of
    the others: a request's service time with nothing else waiting."""
    from urllib.parse import urlsplit

    where = urlsplit(url)
    timings = []
    for m in members[:n]:
        _, payload = await post_json(where.hostname, where.port, "/v1/rank", rank_body(m, CALIBRATE_DEADLINE_MS),
                                     CALIBRATE_DEADLINE_MS / 1000 + DRAIN_S)
        timings.append(json.loads(payload)["timings_ms"])
    rest = timings[1:] or timings
    return {stage: float(np.median([t.get(stage, 0.0) for t in rest])) for stage in STAGES}


def serving_page(worker) -> dict:
    """The worker's `/serving/` page: `job_states` (a jobs-alone ranker's cache: jobs, MiB,
    hits, misses; None for other scorers) and `gc` (its garbage-collector pauses since it
    froze what it had loaded, serving/online/gc_pauses.py: cumulative, so a run's are the
    difference)."""
    return worker._get("/serving/") or {}


def gc_line(before: dict | None, after: dict | None) -> str:
    """Collections in one run and the longest pause so far, per generation."""
    if not before or not after:
        return "not reported"
    parts = []
    for gen, now in after["collections"].items():
        n = now["count"] - before["collections"][gen]["count"]
        parts.append(f"{gen} {n} (longest since the freeze {now['longest_ms']:.0f} ms)")
    full = after.get("full_collection_ms") or {}
    return (f"{after['frozen_objects']} objects frozen (a full collection {full.get('before_freeze')} ms before, "
            f"{full.get('after_freeze')} ms after); collections in the run: " + ", ".join(parts))


# ---- the run ------------------------------------------------------------------------------


def marketplace(members: int, days: int, seed: int):
    """The seeded events and the ids of members with a profile."""
    from streams.simulator import Marketplace, MarketplaceConfig

    cfg = MarketplaceConfig(seed=seed, n_members=members, n_companies=max(5, members // 10), n_jobs=2 * members,
                            days=days)
    events = list(Marketplace(cfg).events())
    ids = sorted({e.payload.member_id for e in events if type(e).__name__ == "MemberUpserted"})
    return events, ids


def scorer_label(spec: str) -> str:
    kind, _, arg = spec.partition(":")
    return f"{kind}:{Path(arg).name}" if arg else kind


def table(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in rows)


def row(label: str, via: str, rate: float, fig: dict) -> tuple:
    sh, st = fig["shares"], fig["stage_shares"]

    def pc(x: float) -> str:
        return "-" if x != x else f"{100 * x:.0f}%"
    return (label, via, f"{rate:g}", fig["sent"], f"{fig['offered_per_s']:.2f}", f"{fig['results_per_s']:.2f}",
            f"{fig['p50_ms']:.0f}", f"{fig['p99_ms']:.0f}", f"{fig['last_third_p99_ms']:.0f}",
            f"{fig['outside_p50_ms']:.0f}/{fig['outside_p99_ms']:.0f}", pc(st["total"]), pc(st["retrieve"]), pc(st["rank"]), pc(st["queue"]),
            pc(sh["ok"]), pc(sh["partial"]), pc(sh["shed"] + sh["refused"]), pc(sh["expired"]),
            pc(sh["error"] + sh["lost"]), f"{fig['rss_peak_mb']:.0f}", f"{fig['rss_growth_mb']:+.0f}", f"{fig['worst_send_lateness_ms']:.0f}")


HEADER = ("scorer", "via", "rate", "n", "offered/s", "results/s", "p50 ms", "p99 ms", "p99 end", "outside p50/p99", "svc", "retr", "rank", "queue",
          "ok", "partial", "shed", "expired", "err+lost", "RSS MB", "growth", "late ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The CPU serving tier (the module docstring says how it is made): jobs read alone,
    # pruned to about half of each block and re-distilled, bf16 weights.
    default_ranker = Path(__file__).resolve().parents[1] / "artifacts" / "ranker-jobs-alone-prune-oneshot-bf16"
    ap.add_argument("--scorers", default=f"bm25,ranker:{default_ranker}",
                    help="HIRESTREAM_SERVING_SCORER specs, comma-separated (absolute checkpoint paths)")
    ap.add_argument("--rate", default=None,
                    help="sustainable rate(s), requests/s: one for every scorer or one per scorer; "
                         "default: found per scorer (--load of a closed loop's capacity)")
    ap.add_argument("--load", type=float, default=0.5, help="sustainable rate as a share of the measured capacity")
    ap.add_argument("--calibrate-s", type=float, default=8.0, help="closed-loop calibration: seconds asking")
    ap.add_argument("--clients", type=int, default=4, help="closed-loop calibration: requests in flight")
    ap.add_argument("--duration", type=float, default=12.0, help="seconds per run (scorer, rate, transport)")
    ap.add_argument("--vias", default="kafka,http", help="transports, comma-separated")
    ap.add_argument("--k", type=int, default=50, help="candidates the model ranks per request (RETRIEVE_K)")
    ap.add_argument("--deadline-ms", type=int, default=1000)
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--keep-logs", type=Path, default=None,
                    help="copy each worker's log here when it stops (the run's own folder is deleted)")
    args = ap.parse_args()

    scorers = [s.strip() for s in args.scorers.split(",") if s.strip()]
    rates = [float(r) for r in args.rate.split(",")] if args.rate else None
    if rates and len(rates) == 1:
        rates = rates * len(scorers)
    if rates and len(rates) != len(scorers):
        raise SystemExit(f"--rate gives {len(rates)} rates for {len(scorers)} scorers")
    for spec in scorers:
        kind, _, arg = spec.partition(":")
        if arg and not Path(arg, "config.json").exists():
            raise SystemExit(f"no checkpoint at {arg} (scorer {spec}); pass an absolute path")
    os.environ["HIRESTREAM_MEMBER_PARTITIONS"] = str(args.partitions)  # the broker's topics and the workers'
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are noise in a pipe or a log

    from infra.broker import private_broker
    from streams.producer import produce_events

    started = time.perf_counter()
    print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
    events, members = marketplace(args.members, args.days, args.seed)
    print(f"marketplace: seed {args.seed}, {len(members)} members with profiles, {len(events)} events; "
          f"k = {args.k} candidates ranked per request, {ITEMS} items asked, deadline {args.deadline_ms} ms", flush=True)
    report = {"cpu": cpu_name(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": [], "sustainable": {}}
    rows = [HEADER]
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="hs-e2e-") as tmp, private_broker(Path(tmp) / "kafka") as bootstrap:
        produce_events(events, bootstrap)
        for n, spec in enumerate(scorers):
            label = scorer_label(spec)
            worker, url = start_worker(bootstrap, Path(tmp), spec, args.k, len(events))
            try:
                solo = asyncio.run(alone(url, members, 4))
                print(f"{label}: one request alone: {solo['total']:.0f} ms (retrieve {solo['retrieve']:.0f} ms, "
                      f"rank {solo['rank']:.0f} ms; median of 3 after a warm-up)", flush=True)
                if (states := serving_page(worker).get("job_states")) is not None:
                    solo["job_states"] = states
                    print(f"{label}: job states after the solo requests: {states}", flush=True)
                if rates:
                    rate, how = rates[n], "--rate"
                else:
                    capacity = asyncio.run(closed_loop_capacity(url, members, args.clients, args.calibrate_s, rng))
                    rate = sustainable(capacity, args.load)
                    how = (f"{args.load:g} x {capacity:.2f} ranked results/s measured closed loop with "
                           f"{args.clients} requests in flight over HTTP for {args.calibrate_s:g} s")
                report["sustainable"][label] = {"rate": rate, "how": how, "alone_ms": solo}
                print(f"{label}: sustainable rate {rate:g}/s ({how})", flush=True)
                for r in (rate, 2 * rate):
                    for via in [v.strip() for v in args.vias.split(",") if v.strip()]:
                        gc_before = serving_page(worker).get("gc")
                        with RssSampler(worker.proc.pid) as rss:
                            if via == "kafka":
                                outcomes, t0, late = asyncio.run(run_kafka(bootstrap, members, r, args.duration,
                                                                           args.deadline_ms, rng))
                            else:
                                outcomes, t0, late = asyncio.run(run_http(url, members, r, args.duration,
                                                                          args.deadline_ms, rng))
                        fig = summarize(outcomes, t0)
                        sends = [o.scheduled for o in outcomes]
                        fig.update(rss.figures(), scorer=label, via=via, rate=r, worst_send_lateness_ms=late * 1e3,
                                   offered_per_s=len(sends) / (max(sends) - t0 + 1 / r))
                        page = serving_page(worker)
                        if (states := page.get("job_states")) is not None:
                            fig["job_states"] = states
                        fig["gc"] = gc_after = page.get("gc")
                        report["runs"].append(fig)
                        rows.append(row(label, via, r, fig))
                        print(table([HEADER, rows[-1]]).splitlines()[-1], flush=True)
                        if "job_states" in fig:
                            print(f"  job states: {fig['job_states']}", flush=True)
                        print(f"  garbage collector: {gc_line(gc_before, gc_after)}", flush=True)
            finally:
                worker.stop()
                if args.keep_logs is not None:
                    args.keep_logs.mkdir(parents=True, exist_ok=True)
                    shutil.copy(worker.log_path, args.keep_logs / f"worker-{label.replace('/', '-')}.log")

    verdicts = verdict_lines(report, args.deadline_ms)
    print()
    print(table(rows))
    late = max(f["worst_send_lateness_ms"] for f in report["runs"])
    print(f"\n(rate: scheduled requests/s, open loop; n: requests sent; offered/s: sent / send window; results/s: answers / (last "
          f"answer - first send); p50/p99: request -> result over every answer, from the scheduled send; p99 end: "
          f"p99 of the requests scheduled in the last third of the run (growing latency shows there); "
          f"outside p50/p99: latency minus the time inside the scoring service (transport both ways, the worker's loop, "
          f"consumer lag; the JSON names the 5 slowest requests with their stage timings); "
          f"svc (the time inside the scoring service: the result's total) and retr/rank/queue (its stage timings) as "
          f"shares of the latency of requests that reached retrieval, the rest of it is transport and waiting to be "
          f"read; "
          f"ok..err+lost: shares of requests sent (shed includes HTTP 503s without a result); RSS MB: the worker's "
          f"peak resident memory during the run, growth: last - first sample; late ms: the bench's own worst lateness in starting a send (over "
          f"HTTP: a request's task starting), {late:.0f} ms at worst; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; "
          f"{time.perf_counter() - started:.0f} s)")
    for line in verdicts:
        print(line)
    report["verdicts"] = verdicts
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "e2e.json").write_text(json.dumps(report, indent=2))
    print(f"JSON: {OUT / 'e2e.json'}")
    rerun = ["python", "bench/e2e.py", "--scorers", args.scorers, "--rate",
             ",".join(f"{report['sustainable'][scorer_label(s)]['rate']:g}" for s in scorers),
             "--vias", args.vias, "--duration", f"{args.duration:g}", "--k", str(args.k), "--deadline-ms", str(args.deadline_ms),
             "--members", str(args.members), "--days", str(args.days), "--partitions", str(args.partitions),
             "--seed", str(args.seed)]
    print("rerun (same rates): " + " ".join(shlex.quote(a) for a in rerun))


def verdict_lines(report: dict, deadline_ms: int) -> list[str]:
    """Issue 14's targets, per scorer and transport."""
    out = []
    for label, info in report["sustainable"].items():
        rate = info["rate"]
        for via in ("kafka", "http"):
            at = [f for f in report["runs"] if f["scorer"] == label and f["via"] == via]
            base = next((f for f in at if f["rate"] == rate), None)
            over = next((f for f in at if f["rate"] == 2 * rate), None)
            if base is None or over is None:
                continue
            p99_ok = base["p99_ms"] < 300 and base["shares"]["ok"] > 0.99
            # Not growing: the run's last third no slower than its first (a quarter's slack
            # for noise), or within the deadline + 0.5 s whatever the first third did.
            bounded = over["last_third_p99_ms"] <= max(1.25 * over["first_third_p99_ms"], deadline_ms + 500)
            not_ok = 1 - over["shares"]["ok"]
            out.append(f"{label} {via}: at {rate:g}/s p99 {base['p99_ms']:.0f} ms, {100 * base['shares']['ok']:.0f}% ok "
                       f"(target < 300 ms, all ok: {'met' if p99_ok else 'NOT met'}); at {2 * rate:g}/s p99 "
                       f"{over['p99_ms']:.0f} ms; {over['first_third_p99_ms']:.0f} ms in the run's first third, "
                       f"{over['last_third_p99_ms']:.0f} ms in its last ({'not growing' if bounded else 'GROWING'}), "
                       f"{100 * not_ok:.0f}% not ok (shed {100 * (over['shares']['shed'] + over['shares']['refused']):.0f}%, "
                       f"expired {100 * over['shares']['expired']:.0f}%, partial {100 * over['shares']['partial']:.0f}%, "
                       f"lost {100 * over['shares']['lost']:.0f}%), worker RSS peak {over['rss_peak_mb']:.0f} MB "
                       f"(vs {base['rss_peak_mb']:.0f} MB at {rate:g}/s, growth {over['rss_growth_mb']:+.0f} MB)")
    return out


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
