"""`hirestream settings`: the settings reference (docs/SETTINGS.md), and the Kafka
security settings as librdkafka properties for kcat."""
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


@command.command("kafka-properties")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write (readable by its owner only: it holds the password).")
def kafka_properties(out: Path) -> None:
    """Write the Kafka security settings as librdkafka properties, for `kcat -F <file>`."""
    from streams.kafka_security import KafkaSecurity

    props = KafkaSecurity.from_settings().librdkafka()
    out.touch(mode=0o600)
    out.chmod(0o600)
    out.write_text("".join(f"{name}={value}\n" for name, value in props.items()))
    click.echo(f"wrote {out} ({', '.join(n for n in props if n != 'sasl.password')}); "
               f"kcat -F {out} -b <KAFKA_BOOTSTRAP> ...")
