"""`hirestream worker`: run the stream-processing worker (faust agents + tables)."""
from __future__ import annotations

import click


@click.command("worker")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def command(loglevel: str) -> None:
    """Consume members, companies, jobs, member-actions and hires into RocksDB tables.

    Reads its settings from the environment (KAFKA_BOOTSTRAP, HIRESTREAM_DATA_DIR,
    HIRESTREAM_WEB_PORT, HIRESTREAM_BROKER_SESSION_TIMEOUT, ...). State is served at
    http://127.0.0.1:<web_port>/members/<id>/, /jobs/<id>/ and /stats/.
    """
    from faust.worker import Worker

    from streams.app import app, register_agents

    register_agents()
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
