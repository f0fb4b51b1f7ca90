"""How fast the simulator writes events, on one core, against the cost of writing alone.

Times (CPU seconds of this process, so a busy shared machine does not skew it):
  generate     iterate `Marketplace.events()` (build every envelope)
  generate+write  the same, serialized to JSONL (what `hirestream simulate` does)
  write only   serialize already-built envelopes (the reference: the floor any
               generator pays to produce wire bytes with these schemas)
The ratio says how many times the floor the whole pipeline costs.

    .venv/bin/python bench/simulator_speed.py [--events 200000] [--seed 7]
"""
from __future__ import annotations

import argparse
import itertools
import time

from rich.console import Console
from rich.table import Table

from streams.schemas import serialize
from streams.simulator import Marketplace, MarketplaceConfig, write_jsonl
from models.cpu import cpu_name

TARGET_EVENTS_PER_S = 20_000


def cpu_timed(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")

    config = MarketplaceConfig.for_events(args.events, seed=args.seed)
    build_s, sim = cpu_timed(lambda: Marketplace(config))
    gen_s, n_gen = cpu_timed(lambda: sum(1 for _ in sim.events()))
    wall0 = time.perf_counter()
    write_s, n_written = cpu_timed(lambda: write_jsonl(sim.events(), "/dev/null"))
    wall_s = time.perf_counter() - wall0
    sample = list(itertools.islice(sim.events(), 100_000))
    ser_s, _ = cpu_timed(lambda: [serialize(e) for e in sample])

    floor = len(sample) / ser_s
    table = Table(title=f"simulator speed: {n_written:,} events, {config.n_members:,} members, "
                        f"{config.days} days (CPU time)")
    for col in ("stage", "events/s", "x write-only cost"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    table.add_row("build entities", f"{build_s:.2f} s", "")
    table.add_row("generate", f"{n_gen / gen_s:,.0f}", f"{floor / (n_gen / gen_s):.2f}")
    table.add_row("generate+write JSONL", f"{n_written / write_s:,.0f}", f"{floor / (n_written / write_s):.2f}")
    table.add_row("write only (reference)", f"{floor:,.0f}", "1.00")
    console = Console()
    console.print(table)
    rate = n_written / write_s
    console.print(
        f"generate+write: {rate:,.0f} events/s per CPU second ({wall_s:.1f} s wall), "
        f"target {TARGET_EVENTS_PER_S:,}: {'met' if rate >= TARGET_EVENTS_PER_S else 'NOT met'}"
    )


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
