"""`hirestream run`: the main job behind `make run`.

Starts a broker (unless KAFKA_BOOTSTRAP names one), creates the topics, starts a
stream worker, streams a simulated marketplace through Kafka (with a few malformed
messages, to show the dead-letter path), and prints what a user wants to see:
events/s, freshness, dead letters and a few members' verbalized histories. Then it
stops what it started.
"""
from __future__ import annotations

import shutil
import time

import click


def _bad_messages() -> list[tuple[str, bytes, bytes]]:
    """What real producers get wrong: broken JSON, a missing field, a wrong key."""
    return [
        ("member-actions", b"m-bad", b'{"schema": "hirestream.v1", "event_id": "bad-1", "type": '),
        ("member-actions", b"m-bad",
         b'{"schema":"hirestream.v1","event_id":"bad-2","event_time":"2026-01-05T10:00:00Z",'
         b'"type":"member.action","payload":{"member_id":"m-bad","action":"dismiss","job_id":"j1"}}'),
        ("jobs", b"j-bad", b'{"schema":"hirestream.v2","event_id":"bad-3"}'),
    ]


@click.command("run")
@click.option("--events", default=60_000, show_default=True, help="Simulated events to stream.")
@click.option("--seed", default=7, show_default=True)
@click.option("--members-shown", default=2, show_default=True, help="Verbalized histories to print.")
@click.option("--keep-running", is_flag=True, help="Leave the broker and worker up at the end.")
def command(events: int, seed: int, members_shown: int, keep_running: bool) -> None:
    """Stream a simulated marketplace through Kafka and the stream worker; report."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from tqdm import tqdm

    from infra import broker
    from infra.worker_process import WorkerProcess
    from streams.producer import make_producer
    from streams.schemas import key_of, serialize, topic_of
    from streams.settings import get_settings
    from streams.simulator import Marketplace, MarketplaceConfig

    console = Console()
    settings = get_settings()
    run_dir = settings.data_dir / "run"
    external = broker.external_bootstrap()
    if not external and run_dir.exists():
        shutil.rmtree(run_dir)  # each run starts from empty topics and tables
    run_dir.mkdir(parents=True, exist_ok=True)

    cfg = broker.BrokerConfig.from_settings(settings, data_dir=run_dir / "kafka")
    bootstrap = external or broker.ensure_running(cfg)
    broker.create_topics(bootstrap)
    console.print(f"[bold]broker[/bold] {bootstrap} ({'existing cluster' if external else 'started here'})")

    worker = WorkerProcess(bootstrap, run_dir / "worker", settings.web_port,
                           app_id=f"hirestream-run-{int(time.time())}" if external else settings.app_id,
                           broker_session_timeout=6.0, broker_heartbeat_interval=2.0)
    try:
        worker.start().wait_ready(90)
        sim = Marketplace(MarketplaceConfig.for_events(events, seed))
        producer = make_producer(bootstrap)
        sent, t0 = 0, time.perf_counter()
        for ev in tqdm(sim.events(), total=events, desc="stream", unit="ev"):
            producer.send(topic_of(ev), key=key_of(ev).encode(), value=serialize(ev))
            sent += 1
            if sent >= events:
                break
        for topic, key, value in _bad_messages():
            producer.send(topic, key=key, value=value)
        producer.flush()
        produce_s = time.perf_counter() - t0
        producer.close()

        bar = tqdm(total=sent, desc="worker", unit="ev")

        def caught_up():
            s = worker.stats() or {}
            bar.n = s.get("processed_total", 0) + sum(s.get("duplicates", {}).values())
            bar.refresh()
            return s if bar.n >= sent and sum(s.get("dead_letters", {}).values()) >= 3 else None

        stats = worker.wait_for(caught_up, 600, "the worker to catch up", interval=0.25)
        bar.close()
        _report(console, Table, Panel, worker, sim, stats, sent, produce_s, members_shown)
    finally:
        if not keep_running:
            worker.stop()
            if not external:
                broker.stop(cfg)


def _report(console, Table, Panel, worker, sim, stats, sent, produce_s, members_shown) -> None:
    t = Table(title="hirestream: a simulated marketplace streamed through Kafka")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("events produced", f"{sent:,} in {produce_s:.1f} s ({sent / produce_s:,.0f}/s)")
    t.add_row("events applied by the worker", f"{stats['processed_total']:,} ({stats['events_per_s']:,.0f}/s)")
    t.add_row("freshness p50 / p99 (produced → in table)",
              f"{stats['freshness_p50_s'] * 1000:,.0f} ms / {stats['freshness_p99_s'] * 1000:,.0f} ms")
    t.add_row("duplicates ignored", f"{sum(stats['duplicates'].values()):,}")
    t.add_row("dead letters (reason in headers)",
              ", ".join(f"{k}.dlq={v}" for k, v in sorted(stats["dead_letters"].items())))
    console.print(t)
    busiest = sorted(sim.members, key=lambda m: m)[:200]
    shown = 0
    for member_id in busiest:
        state = worker.member(member_id)
        if state and len(state["history"]) >= 3:
            console.print(Panel(state["verbalized_history"].strip(), title=f"verbalized history of {member_id}"))
            shown += 1
            if shown >= members_shown:
                break
    console.print("(freshness while producing flat out measures backlog; `bench/ingest.py` paces it)")
