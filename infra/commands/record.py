"""`hirestream record`: topics (or the simulator's output) -> an ordered event log."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("record")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Log file to write (JSONL, one event a line, in event-time order).")
@click.option("--from-kafka", "from_kafka", is_flag=True,
              help="Read every partition of the topics to their current end (default: run the simulator).")
@click.option("--bootstrap", default=None, help="host:port; default KAFKA_BOOTSTRAP or settings.")
@click.option("--events", default=60_000, show_default=True, help="Simulator: about this many events.")
@click.option("--seed", default=7, show_default=True, help="Simulator seed.")
@click.option("--timeout", default=120.0, show_default=True, help="Kafka: seconds to reach the end offsets.")
def command(out: Path, from_kafka: bool, bootstrap: str | None, events: int, seed: int, timeout: float) -> None:
    """Write a compact, ordered event log with event times (and Kafka offsets)."""
    import time

    from serving.evaluation.eventlog import record_topics, write_log

    t0 = time.perf_counter()
    if from_kafka:
        from streams.settings import get_settings

        report = record_topics(bootstrap or get_settings().bootstrap, out, timeout=timeout)
        n = report.events
        if report.skipped:
            click.echo(f"{report.n_skipped} invalid messages not recorded (see the .dlq topics)", err=True)
    else:
        from streams.simulator import Marketplace, MarketplaceConfig

        n = write_log(Marketplace(MarketplaceConfig.for_events(events, seed)).events(), out)
    click.echo(f"recorded {n:,} events to {out} in {time.perf_counter() - t0:.1f} s")
