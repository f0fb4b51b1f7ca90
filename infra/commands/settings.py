"""`hirestream settings`: the settings reference (docs/SETTINGS.md) and what is in effect."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("settings")
def command() -> None:
    """Every setting: its environment variable, type, default, bounds and meaning."""


@command.command("doc")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write (default docs/SETTINGS.md).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the file is stale.")
def doc(out: Path | None, check: bool) -> None:
    """Write docs/SETTINGS.md from the settings classes' field descriptions."""
    from infra import settings_doc

    path = out or settings_doc.DOC_PATH
    if check:
        current = path.read_text() if path.is_file() else None
        if current != settings_doc.render():
            click.echo(f"{path} is stale: run `{settings_doc.REGENERATE}`", err=True)
            sys.exit(1)
        click.echo(f"{path} is current")
        return
    changed = settings_doc.write(path)
    click.echo(f"{path}: {'written' if changed else 'already current'}")
