"""`hirestream broker fetch|start|stop|status|create-topics`: the local Kafka broker."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from infra import broker as kafka_broker


def _config(data_dir: Path | None) -> kafka_broker.BrokerConfig:
    return kafka_broker.BrokerConfig.from_settings(data_dir=data_dir)


def _fail(err: kafka_broker.BrokerError) -> None:
    raise click.ClickException(str(err)) from err


data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="Broker data dir (configuration, KRaft store, logs, pid file). "
         "Default: <settings.data_dir>/kafka.",
)


@click.group("broker")
def command() -> None:
    """A single-node Apache Kafka broker (KRaft) run from Maven Central jars.

    KAFKA_BOOTSTRAP=host:port uses an existing cluster instead (start/stop then start
    nothing); HIRESTREAM_BROKER_LISTEN=host:port moves the broker started here
    (default 127.0.0.1:19092, controller on the next port).
    """
    # Our own progress lines, without the Kafka clients' per-connection INFO chatter.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("infra").setLevel(logging.INFO)


@command.command()
def fetch() -> None:
    """Fetch the broker's jars into the cache (once; needs mvn)."""
    libs = kafka_broker.libs_dir()
    if kafka_broker.jars_present(libs):
        click.echo(f"Kafka {kafka_broker.kafka_version()} jars already in {libs}")
        return
    t0 = time.monotonic()
    try:
        libs = kafka_broker.fetch_jars()
    except kafka_broker.BrokerError as err:
        _fail(err)
    n = len(list(libs.glob("*.jar")))
    click.echo(f"fetched {n} jars for Kafka {kafka_broker.kafka_version()} into {libs} "
               f"in {time.monotonic() - t0:.1f} s")


@command.command()
@data_dir_option
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for it to answer.")
@click.option("--topics/--no-topics", default=True, show_default=True,
              help="Create the map's topics (and their .dlq) once it answers.")
def start(data_dir: Path | None, timeout: float, topics: bool) -> None:
    """Start the broker in the background and wait until it answers (idempotent)."""
    try:
        external = kafka_broker.external_bootstrap()
        if external:
            kafka_broker.wait_until_ready(external, timeout)
            click.echo(f"KAFKA_BOOTSTRAP={external} answers; using it, nothing started")
            bootstrap = external
        else:
            cfg = _config(data_dir)
            libs = kafka_broker.fetch_jars()
            t0 = time.monotonic()
            pid = kafka_broker.start(cfg, libs, timeout=timeout)
            click.echo(f"Kafka {kafka_broker.kafka_version()} broker pid {pid} answers on "
                       f"{cfg.bootstrap} ({time.monotonic() - t0:.1f} s); logs: {cfg.server_log}")
            bootstrap = cfg.bootstrap
        if topics:
            created = kafka_broker.create_topics(bootstrap)
            click.echo(f"topics: {len(created)} created, "
                       f"{len(kafka_broker.topic_plan(1)) - len(created)} already there")
    except kafka_broker.BrokerError as err:
        _fail(err)


@command.command()
@data_dir_option
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
def stop(data_dir: Path | None, timeout: float) -> None:
    """Stop the broker started from this data dir (SIGTERM, wait, then SIGKILL)."""
    if kafka_broker.external_bootstrap():
        click.echo("KAFKA_BOOTSTRAP is set: that cluster is not ours to stop")
        return
    cfg = _config(data_dir)
    if kafka_broker.stop(cfg, timeout=timeout):
        click.echo(f"stopped the broker on {cfg.bootstrap}")
    else:
        click.echo(f"no broker running from {cfg.data_dir}")


@command.command()
@data_dir_option
def status(data_dir: Path | None) -> None:
    """Say whether the broker runs and answers; exit 1 if it does not answer."""
    external = kafka_broker.external_bootstrap()
    if external:
        bootstrap, pid = external, None
        click.echo(f"KAFKA_BOOTSTRAP={external} (external cluster)")
    else:
        cfg = _config(data_dir)
        bootstrap, pid = cfg.bootstrap, kafka_broker.running_pid(cfg)
        click.echo(f"Kafka {kafka_broker.kafka_version()} in {cfg.data_dir}: "
                   + (f"pid {pid}" if pid else "not running"))
    if not kafka_broker.answers(bootstrap):
        click.echo(f"nothing answers on {bootstrap}")
        raise SystemExit(1)
    counts = kafka_broker.partition_counts(bootstrap, list(kafka_broker.topic_plan(1)))
    click.echo(f"answers on {bootstrap}; map topics present: {len(counts)}/"
               f"{len(kafka_broker.topic_plan(1))}")


@command.command("create-topics")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the broker.")
def create_topics(timeout: float) -> None:
    """Create the map's topics and their .dlq topics where missing (idempotent)."""
    bootstrap = kafka_broker.external_bootstrap() or _config(None).bootstrap
    try:
        kafka_broker.wait_until_ready(bootstrap, timeout)
        created = kafka_broker.create_topics(bootstrap)
    except kafka_broker.BrokerError as err:
        _fail(err)
    click.echo(f"{bootstrap}: created {', '.join(created) if created else 'nothing (all there)'}")
