"""`hirestream import MAPPING --out LOG`: a job board's exports -> a validated, sorted event log."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("import")
@click.argument("mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The event log to write (JSONL, event-time order), ready for `hirestream replay`.")
@click.option("--rejected", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Every rejected row as file<TAB>line<TAB>reason (default: LOG.rejected.tsv).")
@click.option("--chunk", default=200_000, show_default=True, help="Events sorted in memory at a time.")
@click.option("--show", default=20, show_default=True, help="Rejected rows to print.")
def command(mapping: Path, out: Path, rejected: Path | None, chunk: int, show: int) -> None:
    """Read the CSV, JSON Lines or Parquet exports MAPPING (a TOML file) names, turn each row into
    an event as it says, validate it, and write one event-time-sorted log; report the
    rejected rows (file, line, reason) and the fields the exports left unknown."""
    from pydantic import ValidationError

    from infra.importing import import_exports, load_mapping
    from infra.importing.readers import UnreadableExport

    try:
        spec = load_mapping(mapping)
    except ValidationError as err:
        raise click.ClickException(f"{mapping} is not a valid mapping:\n{err}") from None
    rejected = rejected or out.with_name(out.name + ".rejected.tsv")
    try:
        report = import_exports(spec, out, chunk=chunk, rejected_path=rejected)
    except UnreadableExport as err:
        raise click.ClickException(f"nothing written: {err}") from None
    click.echo(f"read {sum(report.rows.values()):,} rows from {len(report.rows)} files; wrote {report.events:,} "
               f"events to {out}; rejected {report.n_rejected:,} rows (all of them in {rejected})")
    for file, line, reason in report.rejected[:show]:
        click.echo(f"  rejected {file}:{line}: {reason}")
    if report.n_rejected > show:
        click.echo(f"  ... {report.n_rejected - show:,} more; by reason: "
                   + ", ".join(f"{r} {n:,}" for r, n in report.rejected_by_reason.most_common(5)))
    if report.unknown:
        click.echo("fields left unknown (rows): " + ", ".join(
            f"{file}:{name} {n:,}" for (file, name), n in sorted(report.unknown.items())))
    for file, names in report.unmapped.items():
        click.echo(f"not in {file} (left unknown or default): {', '.join(names)}")
