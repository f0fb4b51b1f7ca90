"""`hirestream run`: the main job behind `make run`.

Starts a broker (unless KAFKA_BOOTSTRAP names one), creates the topics, starts a
stream worker, streams a simulated marketplace through Kafka (with a few malformed
messages, to show the dead-letter path), and prints what a user wants to see:
events/s, freshness, dead letters and a few members' verbalized histories. Then it
records the topics back into an event log, replays that log in event time through
the serving path (baselines and any trained ranker side by side) and prints the
headline table. Last, it stops what it started.
"""
from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import time

import click

from streams.topics import JOBS, MEMBER_ACTIONS

FRESHNESS_EVENTS = 2_000  # the day's last events, streamed at a steady rate
FRESHNESS_RATE = 200  # events/s


def _bad_messages() -> list[tuple[str, bytes, bytes]]:
    """What real producers get wrong: broken JSON, a missing field, a wrong key."""
    return [
        (MEMBER_ACTIONS.name, b"m-bad", b'{"schema": "hirestream.v1", "event_id": "bad-1", "type": '),
        (MEMBER_ACTIONS.name, b"m-bad",
         b'{"schema":"hirestream.v1","event_id":"bad-2","event_time":"2026-01-05T10:00:00Z",'
         b'"type":"member.action","payload":{"member_id":"m-bad","action":"dismiss","job_id":"j1"}}'),
        (JOBS.name, b"j-bad", b'{"schema":"hirestream.v2","event_id":"bad-3"}'),
    ]


@click.command("run")
@click.option("--events", default=60_000, show_default=True, help="Simulated events to stream.")
@click.option("--seed", default=7, show_default=True)
@click.option("--members-shown", default=2, show_default=True, help="Verbalized histories to print.")
@click.option("--keep-running", is_flag=True, help="Leave the broker and worker up at the end.")
def command(events: int, seed: int, members_shown: int, keep_running: bool) -> None:
    """Stream a simulated marketplace through Kafka and the stream worker; report."""
    from infra.terminal import console as make_console
    from rich.panel import Panel
    from rich.table import Table

    from infra import broker
    from infra.worker_process import WorkerProcess
    from streams.producer import EventProducer, produce_events
    from streams.settings import get_settings
    from streams.simulator import Marketplace, MarketplaceConfig

    # SIGTERM (`kill`, a CI timeout) ends the run through the `finally` below, which stops
    # the worker and broker it started. Python's default would leave both running, and the
    # orphaned worker broke the next run on the same ports (OutOfOrderSequenceNumber).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    console = make_console(min_width=140)  # tables stay readable when piped
    settings = get_settings()
    phases = Phases()
    run_dir = settings.data_dir / "run"
    external = broker.external_bootstrap()
    if not external and run_dir.exists():
        shutil.rmtree(run_dir)  # each run starts from empty topics and tables
    run_dir.mkdir(parents=True, exist_ok=True)

    cfg = broker.BrokerConfig.from_settings(settings, data_dir=run_dir / "kafka")
    with phases("broker and topics"):
        bootstrap = external or broker.ensure_running(cfg)
        broker.create_topics(bootstrap)
    console.print(f"[bold]broker[/bold] {bootstrap} ({'existing cluster' if external else 'started here'})")

    worker = WorkerProcess(bootstrap, run_dir / "worker", settings.web_port,
                           app_id=f"hirestream-run-{int(time.time())}" if external else settings.app_id,
                           broker_session_timeout=6.0, broker_heartbeat_interval=2.0)
    try:
        with phases("worker start"):
            worker.start().wait_ready(90)
        with phases("simulate"):
            sim = Marketplace(MarketplaceConfig.for_events(events, seed))
            day = list(itertools.islice(sim.events(), events))
        # Flat out first (throughput), then the last events at a steady rate once the
        # worker has caught up (freshness): flat out, freshness would only time the backlog.
        backlog, paced = day[:-FRESHNESS_EVENTS], day[-FRESHNESS_EVENTS:]
        with phases("stream through Kafka"):
            sent = produce_events(backlog, bootstrap, progress="stream", total=len(backlog))
            with EventProducer(bootstrap) as producer:
                for topic, key, value in _bad_messages():
                    producer.send_raw(topic, value, key=key)
            throughput = worker.wait_processed(len(backlog) + len(_bad_messages()), 600)
            worker.reset_stats()
            produce_events(paced, bootstrap, rate=FRESHNESS_RATE, progress=f"stream at {FRESHNESS_RATE}/s")
            freshness = worker.wait_processed(len(paced), 600)
        _report(console, Table, Panel, worker, sim, throughput, freshness, sent, members_shown)
        _replay(console, bootstrap, run_dir / "day.jsonl", phases)
        console.print(phases.table())
    finally:
        if not keep_running:
            worker.stop()
            if not external:
                broker.stop(cfg)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


class Phases:
    """Wall time per phase of the run, printed at the end: where the minutes went."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

    def table(self):
        from rich.table import Table

        t = Table(title="where the run's time went")
        t.add_column("phase")
        t.add_column("wall s", justify="right")
        for name, s in self.seconds.items():
            t.add_row(name, f"{s:,.0f}")
        t.add_row("total (set-up excluded)", f"{time.perf_counter() - self.started:,.0f}")
        return t


def _replay(console, bootstrap: str, log_path, phases: Phases) -> None:
    """Record what was streamed (from Kafka, in event time) and replay it offline."""
    from serving.evaluation.eventlog import record_topics
    from serving.evaluation.replay import headline

    with phases("record the topics"):
        recorded = record_topics(bootstrap, log_path)
    console.print(f"recorded the streamed topics to {log_path} ({recorded.events:,} events, "
                  f"{recorded.n_skipped} malformed messages left out: they are on the .dlq topics)")
    with phases("ranker (train or load)"):
        cutoff, rankers = _ensure_ranker(console, log_path)
    # An LM on CPU scores tens of jobs a second: rankers see a sample of the points.
    with phases("replay and report"):
        table, report_path = headline(log_path, ranker_sample=0.1, evaluate_from=cutoff, rankers=rankers)
    console.print(table)
    console.print(f"replay report with plots: [bold]{report_path}[/bold]")


def _ensure_ranker(console, log_path) -> tuple[float, list]:
    """The 360Brew rankers for the replay table: the newest checkpoints in artifacts/
    if there are any (at most HIRESTREAM_RUN_RANKERS: each costs replay time), else one
    trained here on the log's earlier days within the configured budget. Returns the
    cutoff (every model is evaluated on the requests after it) and the checkpoints."""
    from serving.training.ranker_pipeline import log_split, train_ranker
    from serving.evaluation.replay import find_rankers
    from streams.settings import get_settings

    settings = get_settings()
    train_ex, cutoff, description = log_split(log_path, settings.run_held_out_days)
    used, older = newest_checkpoints(find_rankers(), settings.run_rankers)
    if used:
        console.print(f"ranker: using the checkpoint(s) already in {settings.artifacts_dir}: "
                      f"{', '.join(p.name for p in used)} (delete them to train one here)")
        if older:
            console.print(f"ranker: left out, older: {', '.join(p.name for p in older)} "
                          f"(HIRESTREAM_RUN_RANKERS={settings.run_rankers} newest; 0 replays every one)")
    else:
        console.print(f"ranker: none in {settings.artifacts_dir}; training ranker-run for "
                      f"{settings.run_ranker_minutes:g} min (HIRESTREAM_RUN_RANKER_MINUTES) on {description}")
        train_ranker("pruned", train_ex, description, budget_minutes=settings.run_ranker_minutes,
                     out_dir=settings.artifacts_dir / "ranker-run", threads=settings.torch_threads or None,
                     extra_meta={"trained_on": str(log_path), "evaluate_from": cutoff})
        used = find_rankers()
    console.print(f"every model below is evaluated on the last {settings.run_held_out_days} days only "
                  "(requests the ranker never trained on)")
    return cutoff, used


def newest_checkpoints(checkpoints: list, limit: int) -> tuple[list, list]:
    """The `limit` most recently saved checkpoint folders (0: all), newest first, and
    the older ones left out."""
    ordered = sorted(checkpoints, key=lambda p: (-(p / "ranker.json").stat().st_mtime, p.name))
    return (ordered[:limit], ordered[limit:]) if limit else (ordered, [])


def _report(console, Table, Panel, worker, sim, stats, freshness, sent, members_shown) -> None:
    from rich.text import Text

    t = Table(title="hirestream: a simulated marketplace streamed through Kafka")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("events produced (flat out)", f"{sent.sent:,} in {sent.seconds:.1f} s ({sent.events_per_s:,.0f}/s)")
    t.add_row("events applied by the worker", f"{stats['processed_total']:,} ({stats['events_per_s']:,.0f}/s)")
    t.add_row(f"freshness p50 / p99 at {FRESHNESS_RATE}/s (produced → in table)",
              f"{freshness['freshness_p50_s'] * 1000:,.0f} ms / {freshness['freshness_p99_s'] * 1000:,.0f} ms")
    t.add_row("duplicates ignored", f"{sum(stats['duplicates'].values()):,}")
    t.add_row("dead letters (reason in headers)",
              ", ".join(f"{k}.dlq={v}" for k, v in sorted(stats["dead_letters"].items())))
    console.print(t)
    busiest = sorted(sim.members, key=lambda m: m)[:200]
    shown = 0
    for member_id in busiest:
        state = worker.member(member_id)
        if state and len(state["history"]) >= 3:
            # Text, not a markup string: "[2 days ago, ...]" would read as rich markup tags.
            console.print(Panel(Text(state["verbalized_history"].strip()), title=f"verbalized history of {member_id}"))
            shown += 1
            if shown >= members_shown:
                break
