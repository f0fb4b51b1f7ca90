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
@click.option("--to-kafka", is_flag=True, help="Produce the log onto its topics instead of evaluating.")
@click.option("--speed", default="max", show_default=True, help="With --to-kafka: '100x' event time, or 'max'.")
@click.option("--bootstrap", default=None, help="host:port; default KAFKA_BOOTSTRAP or settings.")
def command(log: Path, out_dir: Path | None, scorers: tuple[str, ...], retrievals: tuple[str, ...],
            engine_sample: float, encoder: str | None, seed: int, to_kafka: bool, speed: str, bootstrap: str | None) -> None:
    """Feed LOG in event-time order through the same stream and serving code and
    report metrics per surface and task (or, with --to-kafka, produce it)."""
    from rich.console import Console

    console = Console()
    if to_kafka:
        from serving.evaluation.eventlog import ReadReport, parse_speed, produce_log, read_log
        from streams.settings import get_settings

        report = ReadReport()
        stats = produce_log(read_log(log, report), bootstrap or get_settings().kafka_bootstrap,
                            speed=parse_speed(speed))
        console.print(f"produced {stats.sent:,} events in {stats.seconds:.1f} s ({stats.events_per_s:,.0f}/s); "
                      f"skipped {report.n_skipped} malformed lines")
        return

    from serving.evaluation.replay import ReplayConfig, Variant, default_variants, replay_file
    from serving.evaluation.report import rich_table, write_report
    from serving.online.scorer import make_scorer
    from streams.settings import get_settings

    specs = dict(_pair(r, "--retrieval") for r in retrievals)
    variants = [_variant(s, make_scorer, Variant) for s in scorers] if scorers else default_variants()
    config = ReplayConfig(retrievals=specs, engine_sample=engine_sample, seed=seed, encoder=encoder)
    result = replay_file(log, variants, config, progress=True)
    paths = write_report(result, out_dir or get_settings().artifacts_dir / "replay")
    console.print(rich_table(result, title=f"replay of {result.replay['events']:,} events "
                                           f"({result.replay['skipped_lines']} malformed lines skipped)"))
    console.print(f"report: {paths['report']}  metrics: {paths['metrics']}")


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
