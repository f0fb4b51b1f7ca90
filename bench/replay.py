"""Replay benchmark: events/s of a recorded log replayed in process and through Kafka.

Three measurements on one simulated log (recorded once to bench/out/, reused after):
  1. in process, fold only: every event through `MatchingEngine.apply` (member states
     with streams.state, catalog, index, links, counters): the reference;
  2. in process, evaluating: the replay evaluator with the popularity baseline on
     every slate and the engine path (retrieve -> rank) on 1% of them;
  3. through Kafka: the log produced onto a private broker's topics as fast as the
     producer goes, then read back from every partition by the serving replica
     (`serving.online.replica.IndexReplica`) folding into the same engine, until caught up.
Ratios are against (1), measured in the same run.

    .venv/bin/python bench/replay.py --events 1000000
"""
from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.terminal import console as piped_console  # noqa: E402
from infra.broker import private_broker  # noqa: E402
from serving.online.engine import MatchingEngine  # noqa: E402
from serving.evaluation.eventlog import ReadReport, produce_log, read_log, write_log  # noqa: E402
from serving.evaluation.replay import ReplayConfig, Variant, replay_file  # noqa: E402
from serving.online.replica import REPLICA_TOPICS, IndexReplica  # noqa: E402
from streams.topics import COMPANIES  # noqa: E402
from serving.online.scorer import PopularityScorer  # noqa: E402
from models.cpu import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def recorded_log(n_events: int, seed: int) -> Path:
    from streams.simulator import Marketplace, MarketplaceConfig

    path = OUT / f"replay-{n_events}-{seed}-exact.jsonl"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # for_events lands within a few percent; size up and cut at exactly n_events.
        sim = Marketplace(MarketplaceConfig.for_events(int(n_events * 1.1), seed))
        events = itertools.islice(sim.events(), n_events)
        write_log(tqdm(events, total=n_events, desc="simulate+record", unit="ev", mininterval=2, disable=None), tmp)
        tmp.rename(path)
    return path


def fold_in_process(path: Path) -> tuple[int, float]:
    engine = MatchingEngine(None)
    t0 = time.perf_counter()
    n = 0
    for rec in tqdm(read_log(path, ReadReport()), desc="fold in process", unit="ev", mininterval=2, disable=None):
        engine.apply(rec.event)
        n += 1
    engine._flush_index()  # index writes are lazy (flushed by the first read): count them
    return n, time.perf_counter() - t0


def evaluate_in_process(path: Path) -> tuple[int, float, int]:
    cfg = ReplayConfig(engine_sample=0.01, tasks=("click", "apply"))
    t0 = time.perf_counter()
    result = replay_file(path, [Variant("popularity", PopularityScorer())], cfg, progress=True)
    return result.replay["events"], time.perf_counter() - t0, sum(result.replay["points"].values())


def through_kafka(path: Path, n_expected: int) -> tuple[float, float, float]:
    """(produce seconds, produce+fold seconds, fold-only seconds after producing)."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp, private_broker(Path(tmp)) as bootstrap:
        # bigger batches than the live producer's: a replay is a bulk load (still acks=all, in order)
        stats = produce_log(read_log(path, ReadReport()), bootstrap, speed=None, total=n_expected,
                            linger_ms=50, batch_size=1 << 20)
        engine = MatchingEngine(None)
        replica = IndexReplica(engine, bootstrap, topics=(COMPANIES.name, *REPLICA_TOPICS), poll_ms=100)
        t0 = time.perf_counter()
        replica.start()
        bar = tqdm(total=stats.sent, desc="fold from Kafka", unit="ev", mininterval=2, disable=None)
        deadline = t0 + 3600
        while replica.read < stats.sent:
            if replica.error is not None:
                raise RuntimeError(f"replica failed: {replica.error!r}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"replica read {replica.read} of {stats.sent} within an hour")
            bar.n = replica.read
            bar.refresh()
            time.sleep(0.5)  # progress polling inside a deadline
        engine._flush_index()
        fold_s = time.perf_counter() - t0
        bar.close()
        replica.stop()
        return stats.seconds, stats.seconds + fold_s, fold_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")
    console = piped_console()

    path = recorded_log(args.events, args.seed)
    n, fold_s = fold_in_process(path)
    ref = n / fold_s
    t = Table(title=f"replay of {n:,} recorded events ({path.stat().st_size / 1e6:,.0f} MB log)")
    for c in ("path", "seconds", "events/s", "vs in-process fold"):
        t.add_column(c, justify="right" if c != "path" else "left")
    t.add_row("in process: fold (reference)", f"{fold_s:,.1f}", f"{ref:,.0f}", "1.00x")
    if not args.skip_eval:
        n_eval, eval_s, points = evaluate_in_process(path)
        t.add_row(f"in process: fold + evaluate ({points:,} points)", f"{eval_s:,.1f}", f"{n_eval / eval_s:,.0f}",
                  f"{n_eval / eval_s / ref:.2f}x")
    if not args.skip_kafka:
        produce_s, total_s, kafka_fold_s = through_kafka(path, n)
        t.add_row("Kafka: produce (max speed)", f"{produce_s:,.1f}", f"{n / produce_s:,.0f}", f"{n / produce_s / ref:.2f}x")
        t.add_row("Kafka: replica reads all partitions + folds", f"{kafka_fold_s:,.1f}", f"{n / kafka_fold_s:,.0f}",
                  f"{n / kafka_fold_s / ref:.2f}x")
        t.add_row("Kafka: produce + fold, end to end", f"{total_s:,.1f}", f"{n / total_s:,.0f}", f"{n / total_s / ref:.2f}x")
    console.print(t)
    console.print("rerun: .venv/bin/python bench/replay.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
