"""`hirestream produce`: validate a JSONL file of events and send it to Kafka."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("produce")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL, one event envelope per line.")
@click.option("--topic", default=None,
              help="Topic every line must belong to; default: each line's type decides its topic.")
@click.option("--bootstrap", default=None, help="host:port; default KAFKA_BOOTSTRAP or settings.")
def command(path: Path, topic: str | None, bootstrap: str | None) -> None:
    """Validate each line before sending; report what was rejected and why."""
    from streams.producer import produce_file
    from streams.settings import get_settings

    report = produce_file(path, bootstrap or get_settings().bootstrap, topic)
    for line_no, reason in report.rejected[:50]:
        click.echo(f"rejected line {line_no}: {reason}", err=True)
    if len(report.rejected) > 50:
        click.echo(f"... and {len(report.rejected) - 50} more rejected lines", err=True)
    per_topic = ", ".join(f"{t}={n}" for t, n in sorted(report.by_topic.items()))
    click.echo(f"sent {report.sent} events ({per_topic}) in {report.seconds:.2f}s; "
               f"rejected {len(report.rejected)}")
    if report.rejected:
        raise SystemExit(1)
