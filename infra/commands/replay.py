"""`hirestream replay`: a recorded log through the scoring path (evaluation), or back onto Kafka."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("replay")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder (default artifacts/replay).")
@click.option("--scorer", "scorers", multiple=True,
              help="Variant as name=spec[@retrieval][%sample], e.g. bm25=bm25, pop=popularity@term, "
                   "student=ranker:artifacts/ranker-student%0.05. Default: baselines + rankers in artifacts/.")
@click.option("--retrieval", "retrievals", multiple=True, default=("hybrid=hybrid,exact", "term=term,exact"),
              show_default=True, help="Retrieval setting as name=index spec.")
@click.option("--engine-sample", default=0.1, show_default=True, help="Share of slates run through retrieve->rank.")
@click.option("--encoder", default=None, type=click.Path(exists=True, file_okay=False),
              help="PLM4Job checkpoint (hirestream train encoder) for the dense column; default hashed terms.")
@click.option("--seed", default=0, show_default=True)
@click.option("--task", "tasks", multiple=True,
              help="Task to evaluate (repeat): click, save, apply, dismiss, search_relevance, view (next view), "
                   "dwell (a view of --dwell-threshold or longer). Default: click, apply on impressions; "
                   "view, dwell, apply on views.")
@click.option("--slates", type=click.Choice(["auto", "impressions", "views"]), default="auto", show_default=True,
              help="What the log's views are: impressions (shown jobs) or page views of a job board (slates are "
                   "then the jobs open at the time); auto: impressions when the log has clicks, saves or dismisses.")
@click.option("--outcome-window", default="3d", show_default=True,
              help="How long after a job was shown an action counts (e.g. 3d, 12h, 900s).")
@click.option("--slate-gap", default="30m", show_default=True,
              help="A gap between a member's views longer than this starts a new slate.")
@click.option("--dwell-threshold", default="30s", show_default=True,
              help="A view lasting this long or longer is a positive of the dwell task.")
@click.option("--min-positives", default=20, show_default=True,
              help="Warn when a task has fewer positives than this.")
@click.option("--views-candidates", default=100, show_default=True,
              help="Views slates: open jobs scored per slate (a seeded sample beyond it).")
@click.option("--to-kafka", is_flag=True, help="Produce the log onto its topics instead of evaluating.")
@click.option("--speed", default="max", show_default=True, help="With --to-kafka: '100x' event time, or 'max'.")
@click.option("--bootstrap", default=None, help="host:port; default KAFKA_BOOTSTRAP or settings.")
def command(log: Path, out_dir: Path | None, scorers: tuple[str, ...], retrievals: tuple[str, ...],
            engine_sample: float, encoder: str | None, seed: int, tasks: tuple[str, ...], slates: str,
            outcome_window: str, slate_gap: str, dwell_threshold: str, min_positives: int, views_candidates: int,
            to_kafka: bool, speed: str, bootstrap: str | None) -> None:
    """Feed LOG in event-time order through the same stream and serving code and
    report metrics per surface and task (or, with --to-kafka, produce it)."""
    from infra.terminal import console as make_console

    console = make_console()
    if to_kafka:
        from serving.evaluation.eventlog import ReadReport, parse_speed, produce_log, read_log
        from streams.settings import get_settings

        report = ReadReport()
        stats = produce_log(read_log(log, report), bootstrap or get_settings().bootstrap,
                            speed=parse_speed(speed))
        console.print(f"produced {stats.sent:,} events in {stats.seconds:.1f} s ({stats.events_per_s:,.0f}/s); "
                      f"skipped {report.n_skipped} malformed lines")
        return

    from serving.evaluation.eventlog import LogOrderError
    from serving.evaluation.replay import ReplayConfig, Variant, default_variants, replay_file
    from serving.evaluation.report import rich_table, write_report
    from serving.online.scorer import make_scorer
    from streams.settings import get_settings

    specs = dict(_pair(r, "--retrieval") for r in retrievals)
    variants = [_variant(s, make_scorer, Variant) for s in scorers] if scorers else default_variants()
    config = ReplayConfig(retrievals=specs, engine_sample=engine_sample, seed=seed, encoder=encoder, tasks=tasks,
                          slates=slates, outcome_window_s=parse_duration(outcome_window, "--outcome-window"),
                          slate_gap_s=parse_duration(slate_gap, "--slate-gap"),
                          dwell_s=parse_duration(dwell_threshold, "--dwell-threshold"),
                          min_positives=min_positives, views_candidates=views_candidates)
    try:
        result = replay_file(log, variants, config, progress=True)
    except LogOrderError as err:
        raise click.ClickException(str(err)) from None
    paths = write_report(result, out_dir or get_settings().artifacts_dir / "replay")
    console.print(rich_table(result, title=f"replay of {result.replay['events']:,} events "
                                           f"({result.replay['skipped_lines']} malformed lines skipped)"))
    console.print(f"report: {paths['report']}  metrics: {paths['metrics']}")


_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    """'3d' / '12h' / '30m' / '45s' / '900' (seconds) -> seconds."""
    t = text.strip().lower()
    unit = _UNIT_S.get(t[-1:], None)
    try:
        value = float(t[:-1] if unit else t) * (unit or 1.0)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 3d, 12h, 30m or 45s", param_hint=option) from None
    if value < 0:
        raise click.BadParameter(f"{text!r} is negative", param_hint=option)
    return value


def _pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise click.BadParameter(f"{text!r} is not name=value", param_hint=option)
    return name, value


def _variant(text: str, make_scorer, Variant):
    name, spec = _pair(text, "--scorer")
    sample = 1.0
    if "%" in spec:
        spec, _, s = spec.rpartition("%")
        sample = float(s)
    retrieval = "hybrid"
    if "@" in spec:
        spec, _, retrieval = spec.rpartition("@")
    return Variant(name, make_scorer(spec), retrieval=retrieval, sample=sample)
