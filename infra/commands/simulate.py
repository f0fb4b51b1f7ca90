"""`hirestream simulate`: generate a seeded marketplace event log (JSONL and/or Kafka)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import click


def _counted(events: Iterable, counts: Counter, progress) -> Iterator:
    pending = 0
    for event in events:
        kind = event.type
        if kind == "member.action":
            kind = f"member.action:{event.payload.action.value}"
        counts[kind] += 1
        pending += 1
        if pending == 1000:  # progress bars cost more than an event if updated per event
            progress.update(pending)
            pending = 0
        yield event
    progress.update(pending)


@click.command("simulate")
@click.option("--seed", default=7, show_default=True, help="Same seed, same bytes.")
@click.option("--events", "n_events", default=100_000, show_default=True,
              help="About how many events to generate (sizes members, jobs and days).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSONL file to write, one wire-format envelope a line.")
@click.option("--to-kafka", is_flag=True, help="Also produce every event to its topic.")
@click.option("--bootstrap", default=None, help="host:port; default KAFKA_BOOTSTRAP or settings.")
@click.option("--text-share", type=click.FloatRange(0, 1), default=None,
              help="Share of members with a wish stated only in their about text "
                   "(MarketplaceConfig.text_preference_share; default: the config's); 0: none.")
@click.option("--career-move-share", type=click.FloatRange(0, 1), default=None,
              help="About this share of applies and hires go along career paths to adjacent occupations "
                   "(MarketplaceConfig.career_move_share; default: the config's); 0: none.")
@click.option("--community-strength", type=click.FloatRange(0), default=None,
              help="How much latent communities' tastes shape engagement (MarketplaceConfig.community_strength; "
                   "default: the config's); 0: none. Both at 0 give the marketplace before graph signals.")
def command(seed: int, n_events: int, out: Path | None, to_kafka: bool, bootstrap: str | None,
            text_share: float | None, career_move_share: float | None, community_strength: float | None) -> None:
    """Simulate a job marketplace: members, companies, jobs, actions and hires."""
    from infra.terminal import console as make_console
    from rich.table import Table
    from tqdm import tqdm

    from streams.simulator import Marketplace, MarketplaceConfig, write_jsonl

    if out is None and not to_kafka:
        raise click.UsageError("nothing to do: give --out PATH and/or --to-kafka")
    console = make_console()
    t0 = time.perf_counter()
    overrides = {name: value for name, value in (("text_preference_share", text_share),
                                                 ("career_move_share", career_move_share),
                                                 ("community_strength", community_strength)) if value is not None}
    config = MarketplaceConfig.for_events(n_events, seed=seed, **overrides)
    sim = Marketplace(config)
    console.print(
        f"seed {seed}: {config.n_members:,} members, {config.n_companies:,} companies, "
        f"{config.n_jobs:,} open jobs, {len(sim.occupations):,} occupations, {config.days} days, "
        f"text-stated wishes for {config.text_preference_share:.0%} of members, "
        f"career moves {config.career_move_share:g}, community strength {config.community_strength:g} "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    counts: Counter = Counter()
    t1 = time.perf_counter()
    with tqdm(total=n_events, unit="ev", unit_scale=True, desc="simulate", disable=None) as progress:  # None: off when piped
        events = _counted(sim.events(), counts, progress)
        if out is not None and to_kafka:
            events = _tee_to_file(events, out)
        if to_kafka:
            from streams.producer import produce_events
            from streams.settings import get_settings

            report = produce_events(events, bootstrap or get_settings().bootstrap)
            if report.rejected:
                raise click.ClickException(f"{len(report.rejected)} events rejected: {report.rejected[:3]}")
        else:
            write_jsonl(events, out)
    seconds = time.perf_counter() - t1
    total = sum(counts.values())

    table = Table(title=f"{total:,} events in {seconds:.1f} s = {total / seconds:,.0f} events/s")
    table.add_column("type")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{n:,}", f"{n / total:.1%}")
    console.print(table)
    if out is not None:
        console.print(f"wrote {out}")


def _tee_to_file(events: Iterable, path: Path) -> Iterator:
    from streams.schemas import serialize

    with open(path, "wb", buffering=1 << 20) as f:
        for event in events:
            f.write(serialize(event))
            f.write(b"\n")
            yield event
