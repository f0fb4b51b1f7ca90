"""The replay report: markdown tables, PNG plots (matplotlib Agg), JSON for machines.

    paths = write_report(result, "artifacts/replay")
    paths["report"]   -> report.md     tables per surface/task, cold vs warm, replay facts
    paths["metrics"]  -> metrics.json  every deterministic figure (byte-identical across runs)
    paths["json"]     -> report.json   the same plus wall-clock timings (latency, events/s)
    paths["plots"]    -> metric_by_model.png, metric_over_time.png, latency.png
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from serving.evaluation.replay import ALL, SURFACES, ReplayResult

HEADLINE_RANKING = ("auc", "ndcg@10", "mrr")
HEADLINE_ENGINE = ("recall@retrieve_k", "apply_rate@k", "hire_rate@k", "coverage@k", "diversity@k",
                   "dismissed_reshown@k")


def clean(x: Any) -> Any:
    """JSON-safe and stable: NaN -> null, floats rounded to 6 decimals, keys sorted later."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else round(x, 6)
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


def metrics_json(result: ReplayResult) -> bytes:
    """The deterministic figures only: what two replays of one log must agree on byte for byte."""
    cfg = result.config
    doc = {
        "config": {"tasks": list(cfg.tasks), "k": cfg.k, "retrieve_k": cfg.retrieve_k,
                   "retrievals": dict(cfg.retrievals), "engine_sample": cfg.engine_sample, "seed": cfg.seed,
                   "slate_gap_s": cfg.slate_gap_s, "outcome_window_s": cfg.outcome_window_s,
                   "hire_window_s": cfg.hire_window_s, "cold_start_max": cfg.cold_start_max,
                   "slates": cfg.slates, "dwell_s": cfg.dwell_s, "views_candidates": cfg.views_candidates,
                   "min_positives": cfg.min_positives},
        "variants": result.variants,
        "metrics": result.metrics,
        "over_time": result.over_time,
        "replay": result.replay,
    }
    return json.dumps(clean(doc), sort_keys=True, indent=1).encode() + b"\n"


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def cell(result: ReplayResult, variant: str, surface: str, task: str, segment: str = "all") -> dict[str, Any]:
    return result.metrics.get(variant, {}).get(surface, {}).get(task, {}).get(segment, {})


NO_POSITIVES = "NO POSITIVES"  # in place of a ranking metric that has nothing to rank for


def _ranking(c: dict[str, Any], metric: str) -> str:
    """A ranking metric, or why there is none: a task without positives says so
    instead of printing a dash that reads like a missing run."""
    if c and c.get("positives") == 0 and c.get("impressions"):
        return NO_POSITIVES
    return _fmt(c.get(metric))


SLATE_SOURCE_NOTE = {
    "impressions": "Slates are impressions: the log's views are what members were shown, and each slate's "
                   "shown jobs are re-ranked.",
    "views": "Slates are built from views: the log has no impressions (no clicks, saves or dismisses), so "
             "each view session is scored against the jobs open when it started (up to {n}, sampled beyond, "
             "the viewed ones always among them); positives are what the member did to them afterwards. "
             "Figures are not comparable with an impressions replay's: the candidates are the catalog, not "
             "a shown list.",
}


def slate_note(result: ReplayResult) -> str:
    return SLATE_SOURCE_NOTE[result.config.slates].format(n=result.config.views_candidates)


def headline_rows(result: ReplayResult) -> list[list[str]]:
    """One row per variant: ranking quality per task, engine figures for the first task,
    hire AUC and latency (all surfaces, all members)."""
    first = result.config.tasks[0]
    rows = []
    for v in result.variants:
        row = [v]
        for task in result.config.tasks:
            c = cell(result, v, ALL, task)
            row += [_ranking(c, "auc"), _ranking(c, "ndcg@10")]
        c = cell(result, v, ALL, first)
        row += [_fmt(c.get("recall@retrieve_k")), _fmt(c.get("apply_rate@k")), _fmt(c.get("coverage@k")),
                _ranking(cell(result, v, ALL, "hire"), "auc")]
        lat = result.timings["latency_ms"].get(f"{v}/total", {})
        row.append(f"{_fmt(lat.get('p50'), 1)} / {_fmt(lat.get('p99'), 1)}")
        rows.append(row)
    return rows


def headline_columns(result: ReplayResult) -> list[str]:
    cols = ["model"]
    for task in result.config.tasks:
        cols += [f"{task} AUC", f"{task} NDCG@10"]
    return cols + [f"recall@{result.config.retrieve_k}", f"apply rate@{result.config.k}",
                   f"coverage@{result.config.k}", "hire AUC", "latency p50/p99 ms"]


def _md_table(columns: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def markdown(result: ReplayResult, plots: dict[str, str]) -> str:
    cfg = result.config
    r = result.replay
    warnings = r.get("warnings", [])
    parts = ["# Replay evaluation", ""]
    if warnings:
        parts += ["## ⚠ Warnings", ""] + [f"- **{w}**" for w in warnings] + [""]
    parts += [
        slate_note(result),
        "",
        f"{r['events']:,} events replayed in event-time order ({r['skipped_lines']} malformed lines skipped); "
        f"evaluation points: {', '.join(f'{k} {v:,}' for k, v in r['points'].items())}. "
        f"Every point was scored before the event that marks it was folded: "
        f"{r['events_behind_at_scoring']} earlier events were missing from state at scoring time. "
        f"Member state age at scoring: p50 {_fmt(r['member_state_age_s'].get('p50'), 0)} s, "
        f"p95 {_fmt(r['member_state_age_s'].get('p95'), 0)} s.",
        "",
        "## Headline (all surfaces, all members)",
        "",
        _md_table(headline_columns(result), headline_rows(result)),
        "",
        f"Ranking metrics re-rank each slate's candidates (above); recall, apply rate, coverage come from the "
        f"engine path (retrieve {cfg.retrieve_k} -> rank -> top {cfg.k}) on a {cfg.engine_sample:.0%} sample "
        f"of slates. Outcomes count within {cfg.outcome_window_s / 86400:g} days (hires: "
        f"{cfg.hire_window_s / 86400:g}).",
        "",
    ]
    for task in (*cfg.tasks, "hire"):
        parts += [f"## Task `{task}` by surface", ""]
        cols = ["model", "surface", "segment", "requests", "positives", "AUC", "NDCG@10", "MRR"]
        if task != "hire":
            cols += [f"recall@{cfg.retrieve_k}", f"apply@{cfg.k}", f"hire@{cfg.k}", f"coverage@{cfg.k}",
                     f"diversity@{cfg.k}", "dismissed re-shown"]
        rows = []
        for v in result.variants:
            for surface in (*SURFACES, ALL):
                for seg in ("all", "cold", "warm"):
                    c = cell(result, v, surface, task, seg)
                    if not c:
                        continue
                    row = [v, surface, seg, _fmt(c["requests"]), _fmt(c["positives"]), _ranking(c, "auc"),
                           _ranking(c, "ndcg@10"), _ranking(c, "mrr")]
                    if task != "hire":
                        row += [_fmt(c[m]) for m in HEADLINE_ENGINE]
                    rows.append(row)
        parts += [_md_table(cols, rows), ""]
    lat_rows = [[name, _fmt(v["n"]), _fmt(v["p50"], 2), _fmt(v["p95"], 2), _fmt(v["p99"], 2), _fmt(v["mean"], 2)]
                for name, v in result.timings["latency_ms"].items()]
    parts += ["## Scoring latency (ms, wall clock; not part of metrics.json)", "",
              _md_table(["variant/stage", "n", "p50", "p95", "p99", "mean"], lat_rows), "",
              f"Replay: {result.timings['events_per_s']:,.0f} events/s including evaluation.", "",
              "## Plots", ""]
    parts += [f"![{name}]({path})" for name, path in plots.items()]
    return "\n".join(parts) + "\n"


def plot(result: ReplayResult, out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out: dict[str, str] = {}
    variants, tasks = result.variants, list(result.config.tasks)

    # metric by model: AUC and NDCG@10 per task, grouped bars
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(1, len(variants))
    for ax, metric in zip(axes, ("auc", "ndcg@10")):
        x = np.arange(len(tasks) + (metric == "auc"))
        labels = tasks + (["hire"] if metric == "auc" else [])
        for i, v in enumerate(variants):
            vals = [cell(result, v, ALL, t).get(metric, float("nan")) for t in labels]
            ax.bar(x + i * width, [0 if (y is None or y != y) else y for y in vals], width, label=v)
        ax.set_xticks(x + width * (len(variants) - 1) / 2, labels)
        ax.set_title(metric.upper())
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.suptitle("Ranking quality by model (all surfaces)")
    fig.tight_layout()
    out["metric_by_model"] = _save(fig, out_dir / "metric_by_model.png", plt)

    # metric over replay time: NDCG@10 of the first task per day
    task = tasks[0]
    fig, ax = plt.subplots(figsize=(8, 4))
    for v in variants:
        days = result.over_time.get(v, {}).get(task, {})
        xs = [int(d) for d in days]
        ys = [days[d] for d in days]
        ax.plot(xs, ys, marker="o", label=v)
    ax.set_xlabel("replay day")
    ax.set_ylabel(f"NDCG@10 ({task})")
    ax.set_title("Ranking quality over replay time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["metric_over_time"] = _save(fig, out_dir / "metric_over_time.png", plt)

    # latency distribution of the whole engine path per variant
    fig, ax = plt.subplots(figsize=(8, 4))
    data = [(v, result.latencies_ms.get(f"{v}/total", [])) for v in variants]
    data = [(v, xs) for v, xs in data if xs]
    if data:
        ax.boxplot([xs for _, xs in data], showfliers=False)
        ax.set_xticks(range(1, len(data) + 1), [v for v, _ in data])
        ax.set_yscale("log")
    ax.set_ylabel("ms per request (retrieve + rank)")
    ax.set_title("Scoring latency distribution")
    fig.tight_layout()
    out["latency"] = _save(fig, out_dir / "latency.png", plt)
    return out


def _save(fig, path: Path, plt) -> str:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def write_report(result: ReplayResult, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(result, out)
    (out / "metrics.json").write_bytes(metrics_json(result))
    full = json.loads(metrics_json(result))
    full["timings"] = clean(result.timings)
    full["headline"] = {"columns": headline_columns(result), "rows": headline_rows(result)}
    (out / "report.json").write_text(json.dumps(full, sort_keys=True, indent=1) + "\n")
    (out / "report.md").write_text(markdown(result, plots))
    return {"report": out / "report.md", "metrics": out / "metrics.json", "json": out / "report.json",
            "plots": [out / p for p in plots.values()]}


def rich_table(result: ReplayResult, title: str = "replay: models side by side"):
    """The headline table; its caption states the slate source and every warning."""
    from rich.table import Table

    warnings = result.replay.get("warnings", [])
    caption = "\n".join([slate_note(result)] + [f"WARNING: {w}" for w in warnings])
    t = Table(title=title, caption=caption, caption_style="bold red" if warnings else "dim")
    for i, c in enumerate(headline_columns(result)):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in headline_rows(result):
        t.add_row(*row)
    return t
