"""`hirestream worker`: run the stream-processing worker (faust agents + tables)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("worker")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run under cProfile and write its stats here when the worker stops.")
def command(loglevel: str, profile_path: Path | None) -> None:
    """Consume members, companies, jobs, member-actions and hires into RocksDB tables.

    Reads its settings from the environment (KAFKA_BOOTSTRAP, HIRESTREAM_DATA_DIR,
    HIRESTREAM_WEB_PORT, HIRESTREAM_BROKER_SESSION_TIMEOUT, ...). State is served at
    http://127.0.0.1:<web_port>/members/<id>/, /jobs/<id>/ and /stats/.
    """
    import mode.loop

    from streams.settings import get_settings

    from streams.kafka_clients import check_access

    check_access(get_settings().bootstrap)  # refused credentials: a clear error, not aiokafka's retries
    # Before faust makes its loop. uvloop cuts the per-message event-loop cost that
    # bounds ingest (bench/ingest.py --profile); "aio" is the standard library's.
    mode.loop.use(get_settings().event_loop)
    from faust.worker import Worker

    from streams.app import app, register_agents

    register_agents()
    worker = Worker(app, loglevel=loglevel, quiet=True)
    if profile_path is None:
        worker.execute_from_commandline()  # never returns: exits through SystemExit
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        worker.execute_from_commandline()
    finally:  # SIGTERM ends the worker with SystemExit; the stats are written on the way out
        profiler.disable()
        profiler.dump_stats(profile_path)
