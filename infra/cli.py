"""`hirestream`: the one command-line entry point.

Each sub-command lives in its own module under `infra/commands/` and is imported
only when the CLI starts, so `hirestream --help` stays quick and a command's heavy
imports (torch, faust) load only when it runs. They load only there, too, so the CLI
starts with the base install alone and a command whose extra is missing says which
extra to install (infra/extras.py).
"""
from __future__ import annotations

import importlib

import click

# One line per command module; each module exposes `command` (a click command/group).
COMMAND_MODULES = [
    "run",
    "worker",
    "produce",
    "broker",
    "train",
    "compress",
    "simulate",
    "record",
    "replay",
    "serve",
    "schema",
    "import_data",

    "validate",
    "sort",
    "settings",
]


class _Commands(click.Group):
    """Runs a command; what a user can fix ends in a one-line error, not a traceback: a
    package missing because its extra is not installed (which extra to install), and a
    cluster that refuses our credentials (who was refused, which settings to check)."""

    def invoke(self, ctx: click.Context):
        from streams.kafka_clients import KafkaAccessRefused

        try:
            return super().invoke(ctx)
        except KafkaAccessRefused as err:
            raise click.ClickException(str(err)) from None
        except ModuleNotFoundError as err:
            from infra.extras import missing_extra

            missing = missing_extra(err, ctx.invoked_subcommand)
            if missing is None:
                raise
            raise click.ClickException(f"`hirestream {ctx.invoked_subcommand}`: {missing}") from err


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Real-time job matching over Kafka: stream, retrieve, rank, replay."""
    from infra.terminal import plain_when_piped

    plain_when_piped()


for _name in COMMAND_MODULES:
    main.add_command(importlib.import_module(f"infra.commands.{_name}").command)


if __name__ == "__main__":
    main()
