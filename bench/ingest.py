"""Ingest benchmark: events/s through one stream worker and freshness
(produced -> visible in the member/job tables), on simulated marketplace events.

Phase 1 (throughput): N events are produced first, then one worker drains the
backlog; events/s is measured by the worker between its first and last table write.
The reference, measured in the same run on the same backlog, is a plain kafka-python
consumer that only parses and validates each message (no state): the ceiling of a
Python consumer on this machine.

Phase 2 (freshness): another N events are produced at a steady rate while the worker
runs; freshness is the worker's wall time after the table write minus the producer's
timestamp on the message. Besides the run's p50 and p99, the p99 of its worst 10 s
window of apply time: a stall shows there even when it is too short to move the run's
p99 (a worker reading back its own global-table changelog after phase 1 stalled ~3 s:
streams/faust_fixes.py, fix 7).

Phase 3 (`--workers 2`, scale-out): a new consumer group of that many workers drains
both phases' events (2N) from the start; events/s is the group's, from its first to its
last table write on any worker, against the one worker's phase-1 figure.

    .venv/bin/python bench/ingest.py --events 100000 --workers 2
"""
from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from kafka import TopicPartition
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.terminal import console as piped_console  # noqa: E402
from models.cpu import cpu_name  # noqa: E402
from infra.broker import free_ports, private_broker  # noqa: E402
from infra.waiting import wait_for  # noqa: E402
from infra.worker_process import WorkerProcess  # noqa: E402
from streams import kafka_clients  # noqa: E402
from streams.ingest_stats import IngestStats  # noqa: E402
from streams.producer import produce_events  # noqa: E402
from streams.schemas import parse  # noqa: E402
from streams.simulator import Marketplace, MarketplaceConfig  # noqa: E402
from streams.topics import Reader, read_by  # noqa: E402

INGEST_TOPICS = list(read_by(Reader.MEMBER_AGENT, Reader.JOB_AGENT, Reader.COMPANY_AGENT))  # the worker's sources
OUT = Path(__file__).resolve().parent / "out"


def simulated(n: int, seed: int) -> list:
    sim = Marketplace(MarketplaceConfig.for_events(n, seed))
    return list(tqdm(itertools.islice(sim.events(), n), total=n, desc="simulate", unit="ev", disable=None))


def plain_consumer_rate(bootstrap: str, n: int) -> float:
    """Reference: read the backlog and validate every message, keeping no state."""
    consumer = kafka_clients.consumer(bootstrap, group_id=None, enable_auto_commit=False,
                                      max_poll_records=2000, fetch_max_bytes=64 << 20)
    tps = [TopicPartition(t, p) for t in INGEST_TOPICS for p in consumer.partitions_for_topic(t)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen, start = 0, time.perf_counter()
    while seen < n:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for r in records:
                parse(tp.topic, r.value)
            seen += len(records)
    rate = seen / (time.perf_counter() - start)
    consumer.close()
    return rate


# Where a worker's time goes, by component (file path fragments, first match wins).
COMPONENTS = [
    ("hirestream: state updates, verbalizer", ("/streams/", "/models/")),
    ("pydantic validation", ("pydantic",)),
    ("JSON (orjson/json)", ("orjson", "/json/")),
    ("RocksDB store", ("rocksdict", "stores/rocksdb")),
    ("faust + mode (streams, tables, acks)", ("/faust/", "/mode/")),
    ("aiokafka (fetch, produce, protocol)", ("aiokafka",)),
    ("asyncio + sockets", ("asyncio", "selectors", "socket")),
]


def print_profile(console: Console, path: Path, top: int = 12) -> None:
    import pstats

    stats = pstats.Stats(str(path)).stats  # (file, line, fn) -> (cc, nc, tottime, cumtime, callers)
    total = sum(v[2] for v in stats.values())
    shares: dict[str, float] = {}
    for (filename, _, _), v in stats.items():
        name = next((c for c, frags in COMPONENTS if any(f in filename for f in frags)), "other (builtins, C calls)")
        shares[name] = shares.get(name, 0.0) + v[2]
    table = Table(title=f"worker CPU time by component (cProfile, {total:.1f} s in all)")
    table.add_column("component")
    table.add_column("share", justify="right")
    for name, t in sorted(shares.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{t / total:.0%}")
    console.print(table)
    hot = Table(title=f"top {top} functions by own time")
    hot.add_column("function")
    hot.add_column("share", justify="right")
    hot.add_column("calls", justify="right")
    for (filename, line, fn), v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]:
        hot.add_row(f"{fn} ({'/'.join(Path(filename).parts[-2:])}:{line})", f"{v[2] / total:.1%}", f"{v[1]:,}")
    console.print(hot)


def group_drain(bootstrap: str, data_dir: Path, n_workers: int, n: int) -> dict:
    """A new group of `n_workers` workers drains `n` events from the start: events
    applied per second from the group's first table write to its last."""
    workers = [WorkerProcess(bootstrap, data_dir / f"w{i}", port, app_id=f"hs-ingest-group-{n_workers}",
                             broker_session_timeout=10.0, broker_heartbeat_interval=3.0).start()
               for i, port in enumerate(free_ports(n_workers))]
    try:
        for w in workers:
            w.wait_ready(120)
        bar = tqdm(total=n, desc=f"{n_workers} workers drain", unit="ev", disable=None)

        def handled():
            snaps = [w.stats() or {} for w in workers]
            bar.n = sum(s.get("processed_total", 0) + sum(s.get("dead_letters", {}).values()) for s in snaps)
            bar.refresh()
            return snaps if bar.n >= n else None
        snaps = wait_for(handled, 1800, f"{n} events applied by the group", interval=0.25)
        bar.close()
    finally:
        for w in workers:
            w.stop()
    firsts = [s["first_at"] for s in snaps if s.get("first_at")]
    lasts = [s["last_at"] for s in snaps if s.get("last_at")]
    applied = sum(s["processed_total"] for s in snaps)
    return {"workers": n_workers, "applied": applied, "per_worker": [s["processed_total"] for s in snaps],
            "duplicates": sum(sum(s["duplicates"].values()) for s in snaps),
            "dead_letters": {t: sum(s["dead_letters"].get(t, 0) for s in snaps)
                             for t in {t for s in snaps for t in s["dead_letters"]}},
            "events_per_s": applied / (max(lasts) - min(firsts))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="events per phase")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true",
                    help="run the worker under cProfile and print where its time goes (slows it)")
    ap.add_argument("--rate", type=float, default=None,
                    help="phase-2 production rate (events/s); default: half the phase-1 throughput")
    ap.add_argument("--workers", type=int, default=1,
                    help="also drain everything with a new group of this many workers (phase 3)")
    args = ap.parse_args()
    console = piped_console()
    console.print(f"CPU: {cpu_name()}")

    events = simulated(2 * args.events, args.seed)
    backlog, paced = events[: args.events], events[args.events:]
    with tempfile.TemporaryDirectory(prefix="hs-ingest-") as tmp, private_broker(Path(tmp) / "kafka") as bootstrap:
        produce_events(backlog, bootstrap, progress="produce backlog")
        reference = plain_consumer_rate(bootstrap, len(backlog))
        profile_path = OUT / "ingest-worker.prof" if args.profile else None
        OUT.mkdir(exist_ok=True)
        worker = WorkerProcess(bootstrap, Path(tmp) / "worker", free_ports(1)[0], app_id="hs-ingest-bench",
                               profile_path=profile_path,
                               broker_session_timeout=6.0, broker_heartbeat_interval=2.0).start()
        try:
            worker.wait_ready(90)
            phase1 = worker.wait_processed(len(backlog), timeout=1800)
            # Steady traffic comes in small batches (fewer events per member per batch,
            # so more table writes per event): the worker sustains less than it drains.
            rate = args.rate or 0.5 * phase1["events_per_s"]
            worker.reset_stats()
            produce_events(paced, bootstrap, rate=rate, progress=f"produce at {rate:,.0f}/s")
            phase2 = worker.wait_processed(len(paced), timeout=1800)
        finally:
            worker.stop()
        group = group_drain(bootstrap, Path(tmp) / "group", args.workers, len(events)) if args.workers > 1 else None

    table = Table(title=f"Ingest through one faust worker ({args.events:,} simulated events per phase)")
    for col in ("measure", "hirestream worker", "reference", "ratio"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    table.add_row("events/s (backlog drain)", f"{phase1['events_per_s']:,.0f}",
                  f"{reference:,.0f} (plain consumer+validate)", f"{phase1['events_per_s'] / reference:.2f}")
    table.add_row("target events/s", "≥ 5,000", "", "")
    table.add_row(f"freshness p50 at {rate:,.0f} ev/s", f"{phase2['freshness_p50_s'] * 1000:,.0f} ms", "", "")
    table.add_row(f"freshness p99 at {rate:,.0f} ev/s", f"{phase2['freshness_p99_s'] * 1000:,.0f} ms",
                  "target < 1,000 ms", f"{phase2['freshness_p99_s']:.2f}")
    table.add_row(f"  p99 of the worst {IngestStats.WINDOW_S:.0f} s (stalls)",
                  f"{phase2['freshness_worst_window_p99_s'] * 1000:,.0f} ms", "", "")
    table.add_row("events/s (paced phase)", f"{phase2['events_per_s']:,.0f}", f"{rate:,.0f} offered", "")
    table.add_row("duplicates ignored / dead letters", f"{sum(phase1['duplicates'].values())} / "
                  f"{sum(phase1['dead_letters'].values())}", "", "")
    if group:
        table.add_row(f"events/s, {group['workers']} workers together (2 phases' events)",
                      f"{group['events_per_s']:,.0f}", f"{phase1['events_per_s']:,.0f} (one worker, phase 1)",
                      f"{group['events_per_s'] / phase1['events_per_s']:.2f}")
        table.add_row("  events applied per worker", " / ".join(f"{n:,}" for n in group["per_worker"]), "", "")
        table.add_row("  duplicates ignored / dead letters", f"{group['duplicates']} / "
                      f"{sum(group['dead_letters'].values())}", "", "")
    console.print(table)
    if profile_path:
        print_profile(console, profile_path)
    cmd = "python bench/ingest.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    console.print(f"rerun: [bold].venv/bin/{cmd}[/bold]")
    OUT.mkdir(exist_ok=True)
    (OUT / "ingest.json").write_text(json.dumps(
        {"events": args.events, "phase1": phase1, "phase2": phase2, "reference_events_per_s": reference,
         "paced_rate": rate, "group": group, "cpu": cpu_name(), "command": cmd}, indent=2))


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
