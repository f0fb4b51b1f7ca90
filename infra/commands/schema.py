"""`hirestream schema export DIR`: JSON Schema of every event type, for other teams' producers."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("schema")
def command() -> None:
    """The event schemas, as other tools read them."""


@command.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def export(out_dir: Path) -> None:
    """Write <type>.schema.json for every event type into OUT_DIR."""
    from streams.schemas import SCHEMA_VERSION, json_schemas

    out_dir.mkdir(parents=True, exist_ok=True)
    docs = json_schemas()
    for kind, doc in docs.items():
        (out_dir / f"{kind}.schema.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    click.echo(f"wrote {len(docs)} JSON Schemas ({SCHEMA_VERSION}) to {out_dir}: {', '.join(docs)}")
