"""Memory and speed of the simulator at the 10M-event scale, without the full run.

Builds the entities `MarketplaceConfig.for_events(10M)` asks for, then streams the
first --events events to JSONL (/dev/null) and prints the peak RSS at checkpoints: a
flat line after the entities are built is what "generate lazily, day by day" buys.
The reference is the RSS right after building the entities, in the same run, so
the ratio is what streaming the events adds on top of holding the marketplace.

    .venv/bin/python bench/simulator_scale.py [--target 10000000] [--events 1000000]
"""
from __future__ import annotations

import argparse
import itertools
import resource
import time

from rich.console import Console
from rich.table import Table

from streams.simulator import Marketplace, MarketplaceConfig, write_jsonl
from models.cpu import cpu_name


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=int, default=10_000_000, help="run size to configure")
    ap.add_argument("--events", type=int, default=1_000_000, help="events to actually stream")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")

    config = MarketplaceConfig.for_events(args.target, seed=args.seed)
    t0 = time.process_time()
    sim = Marketplace(config)
    build_s = time.process_time() - t0
    base = peak_rss_mb()
    table = Table(title=f"for_events({args.target:,}): {config.n_members:,} members, "
                        f"{config.n_jobs:,} jobs, {config.n_companies:,} companies, {config.days} days")
    for col in ("events streamed", "peak RSS MB", "x RSS after build", "CPU events/s"):
        table.add_column(col, justify="right")
    table.add_row("0 (entities built)", f"{base:,.0f}", "1.00", f"build {build_s:.1f} s")

    events = sim.events()
    done, step = 0, max(1, args.events // 4)
    t1 = time.process_time()
    while done < args.events:
        n = write_jsonl(itertools.islice(events, step), "/dev/null")
        done += n
        rate = done / (time.process_time() - t1)
        table.add_row(f"{done:,}", f"{peak_rss_mb():,.0f}", f"{peak_rss_mb() / base:.2f}", f"{rate:,.0f}")
        if n < step:
            break
    console = Console()
    console.print(table)
    console.print(f"projected CPU time for all ~{args.target:,} events at that rate: "
                  f"{args.target / rate / 60:.1f} min (+ {build_s:.0f} s build)")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
