"""`hirestream validate LOG`: every line of an event log checked offline, no Kafka."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("validate")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--show", default=20, show_default=True, help="Rejected lines to print.")
def command(log: Path, show: int) -> None:
    """Check LOG: every line a valid event, and the log in event-time order (what
    `hirestream replay` needs). Exits 1 if any line is rejected or out of order."""
    from serving.evaluation.eventlog import check_log

    check = check_log(log)
    for line, reason in check.report.skipped[:show]:
        click.echo(f"{log}:{line}: {reason}")
    if check.report.n_skipped > show:
        click.echo(f"... and {check.report.n_skipped - show} more")
    order = "in event-time order" if check.first_unsorted is None else (
        f"NOT in event-time order (first at line {check.first_unsorted}; `hirestream sort {log}` sorts it)")
    click.echo(f"{check.report.events:,} valid events, {check.report.n_skipped:,} rejected lines; {order}")
    if check.report.n_skipped or check.first_unsorted is not None:
        raise SystemExit(1)
