"""`hirestream sort LOG`: an event log into event-time order, in bounded memory."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("sort")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the sorted log (default: LOG itself, replaced when done).")
@click.option("--chunk", default=200_000, show_default=True, help="Events sorted in memory at a time.")
def command(log: Path, out: Path | None, chunk: int) -> None:
    """Sort LOG by event time (ties: entities before what refers to them), as replay
    needs; invalid lines are dropped and counted."""
    from serving.evaluation.eventlog import ReadReport, read_log, sort_log

    report = ReadReport()
    n = sort_log(read_log(log, report), out or log, chunk=chunk)
    click.echo(f"sorted {n:,} events into {out or log}; dropped {report.n_skipped:,} invalid lines")
    for line, reason in report.skipped[:10]:
        click.echo(f"{log}:{line}: {reason}")
