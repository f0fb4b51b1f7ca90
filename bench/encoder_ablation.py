"""PLM4Job ablation: what each graph signal adds to retrieval of held-out applies/hires.

Rows, each adding one part to the row above (same data, seed, steps and initial weights
for the shared parts):

    node text only          the member's / job's own text, no neighbours
    ego-graph text          + neighbours' texts in the prompt, plain text encoder
    + type embeddings       + entity type (member/job/company) per token
    + hop embeddings        + graph-positional (hop distance) per token
    + attention alignment   + learned attention bias by node-to-node graph distance

Metric: recall@k of applies and hires on the held-out later days, each held-out member's
embedding retrieving by KNN over all jobs open after the cutoff (jobs the member already
applied to are removed). References in the same run: random (k / candidates) and
popularity (most-applied training jobs for everyone). A part "helps" when its gain in
recall@100 over the row above is more than twice the paired standard error. Each
row's recall@100 carries its binomial standard error.

Two marketplaces: the tuning one (`--data-seed`, the simulator's default signals:
career moves and latent communities, streams/simulator/careers.py, communities.py)
and the held-out one (streams/simulator/held_out.py), on which every variant is
trained and evaluated with the settings chosen for the tuning one, and reported in
its own columns (`--no-held-out` skips it).

    .venv/bin/python bench/encoder_ablation.py                 # 4 min on 2 idle cores (18 min heavily shared)
    .venv/bin/python bench/encoder_ablation.py --steps 1000    # 29 min on 2 idle cores
    .venv/bin/python bench/encoder_ablation.py --max-len 128   # 6 min: prompts that hold the hop-2 neighbours
    .venv/bin/python bench/encoder_ablation.py --quick         # ~5-9 min on 2 shared cores
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.encoder_training import PromptSpec, TrainConfig  # noqa: E402
from serving.graph_data import marketplace_split  # noqa: E402
from streams.simulator.held_out import HELD_OUT_MARKETPLACE  # noqa: E402
from serving.training.encoder_run import (  # noqa: E402
    DataConfig,
    ModelShape,
    build_tokenizer_and_builder,
    popularity_recall,
    run_variant,
)

OFF = dict(use_type_embeddings=False, use_position_embeddings=False, use_attention_alignment=False)
VARIANTS = [  # name, ego graph in the prompt?, switches
    ("node text only", False, OFF),
    ("ego-graph text (text-only model)", True, OFF),
    ("+ type embeddings", True, {**OFF, "use_type_embeddings": True}),
    ("+ hop (positional) embeddings", True, {**OFF, "use_type_embeddings": True, "use_position_embeddings": True}),
    ("+ attention alignment (full)", True, {}),
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small marketplace, 40 steps per variant")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per variant (default 100; quick 40)")
    ap.add_argument("--budget-minutes", type=float, default=5.0, help="time cap per variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", type=int, nargs="*", default=None, help="row numbers to run (0-4)")
    ap.add_argument("--max-len", type=int, default=PromptSpec().max_len,
                    help="tokens per prompt: the ego's text, then as many neighbours as fit, nearest first")
    ap.add_argument("--no-held-out", dest="held_out", action="store_false",
                    help="skip the held-out marketplace (streams/simulator/held_out.py)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/encoder_ablation.json"))
    return ap.parse_args(argv)


def paired_gain(hits: np.ndarray, prev: np.ndarray) -> tuple[float, float]:
    """Gain in recall and its standard error, pairing the two runs' hits per held-out pair."""
    d = hits.astype(float) - prev.astype(float)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def verdict(gain: float, se: float) -> str:
    if gain > 2 * se:
        return "helps"
    if gain < -2 * se:
        return "hurts"
    return "not significant"


def recall_se(hits: np.ndarray) -> float:
    """Binomial standard error of a recall (held-out pairs as independent draws)."""
    p = float(hits.mean())
    return (p * (1 - p) / len(hits)) ** 0.5


def prompt_reach(builder, split, sample: int = 300) -> dict:
    """How much of a held-out member's ego graph its prompt holds: nodes per hop in the
    ego graph (fanout) against those that fit in max_len, over the first `sample` members.
    Neighbours come nearest first, so a short prompt drops the far hops whole."""
    members = sorted({m for m, _ in split.heldout})[:sample]
    in_graph, in_prompt = np.zeros(3), np.zeros(3)  # hop 1, hop 2, hop 3+
    for m in members:
        ego = builder.ego(split.graph, m)
        kept = set(builder.prompt_of(ego).node_ids)
        for node in ego.nodes[1:]:
            hop = min(node.hop, 3) - 1
            in_graph[hop] += 1
            in_prompt[hop] += node.node_id in kept
    n = max(1, len(members))
    return {"members": len(members), "max_len": builder.spec.max_len,
            **{f"hop{h + 1}_in_graph": float(in_graph[h] / n) for h in range(3)},
            **{f"hop{h + 1}_in_prompt": float(in_prompt[h] / n) for h in range(3)}}


def ablate(split, args, steps, console, label: str) -> tuple[list[dict], dict, dict]:
    """Every variant trained and evaluated on one split: (rows, references, data stats)."""
    shape, spec = ModelShape(), PromptSpec(max_len=args.max_len)
    train_cfg = TrainConfig(max_steps=steps, time_budget_s=args.budget_minutes * 60, seed=args.seed, device="auto")
    tokenizer, builder = build_tokenizer_and_builder(split, shape, spec)
    reach = prompt_reach(builder, split)
    console.print(f"{label}: a held-out member's prompt ({spec.max_len} tokens) holds, per member, "
                  f"{reach['hop1_in_prompt']:.1f} of the ego graph's {reach['hop1_in_graph']:.1f} hop-1 "
                  f"neighbours and {reach['hop2_in_prompt']:.1f} of its {reach['hop2_in_graph']:.1f} hop-2 ones")
    n_cand = len(split.candidate_jobs)
    refs = {
        "random": {f"recall@{k}": min(1.0, k / n_cand) for k in (10, 50, 100)},
        "popularity": popularity_recall(split),
    }
    rows, prev_hits = [], None
    for i, (name, with_graph, switches) in enumerate(VARIANTS):
        if args.only is not None and i not in args.only:
            continue
        b = builder if with_graph else builder.with_spec(replace(spec, fanout=()))
        console.print(f"[bold]{label}: {i}. {name}[/bold] ({steps} steps, cap {args.budget_minutes:g} min)")
        out = run_variant(name, split, tokenizer, b, shape, train_cfg, **switches)
        gain, se = paired_gain(out.hits, prev_hits) if prev_hits is not None else (None, None)  # JSON null
        rows.append({
            "row": i, "variant": name, **out.metrics, "recall@100_se": recall_se(out.hits),
            "gain@100": gain, "gain_se": se, "verdict": verdict(gain, se) if prev_hits is not None else "baseline",
            "steps": out.train.steps, "train_seconds": round(out.train.seconds, 1),
            "eval_seconds": round(out.eval_seconds, 1), "first_loss": out.train.mean_loss(first=10),
            "parameters": out.params,
        })
        prev_hits = out.hits
        console.print(f"   recall@100 {out.metrics['recall@100']:.4f}  ({out.train.steps} steps, {out.train.seconds:.0f}s)")
    return rows, refs, {**split.stats, "prompt_reach": reach}


def print_table(console, title: str, rows: list[dict], refs: dict, stats: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("variant", "R@10", "R@50", "R@100 ± SE", "R@100 warm", "R@100 cold", "Δ R@100 (±SE)", "verdict",
                "steps", "train s", "loss"):
        table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    for ref, m in refs.items():
        table.add_row(f"[dim]{ref} (reference)[/dim]", *(f"{m[f'recall@{k}']:.3f}" for k in (10, 50, 100)),
                      "", "", "", "", "", "", "")
    for r in rows:
        delta = "" if r["verdict"] == "baseline" else f"{r['gain@100']:+.3f} ± {r['gain_se']:.3f}"
        table.add_row(
            r["variant"], f"{r['recall@10']:.3f}", f"{r['recall@50']:.3f}",
            f"{r['recall@100']:.3f} ± {r['recall@100_se']:.3f}",
            f"{r['recall@100_warm']:.3f}", f"{r['recall@100_cold']:.3f}", delta, r["verdict"],
            str(r["steps"]), f"{r['train_seconds']:.0f}", f"{r['first_loss']:.2f}→{r['final_loss']:.2f}",
        )
    console.print(table)
    console.print(f"warm = held-out members with training links, cold = without "
                  f"({stats['heldout_cold_members']} of {stats['heldout_members']} members)")


def print_columns(console, tuning: list[dict], held: list[dict]) -> None:
    """recall@100 and each part's gain, tuning marketplace beside the held-out one."""
    from rich.table import Table

    table = Table(title="PLM4Job ablation, recall@100 ± SE and gain over the row above: "
                        "tuning marketplace | held-out marketplace (nothing chosen on it)")
    for col in ("variant", "tuning R@100", "tuning Δ", "tuning verdict", "held-out R@100", "held-out Δ",
                "held-out verdict"):
        table.add_column(col, justify="left" if col == "variant" or "verdict" in col else "right")
    by_row = {r["row"]: r for r in held}
    for r in tuning:
        h = by_row.get(r["row"])
        cells = []
        for x in (r, h):
            if x is None:
                cells += ["", "", ""]
                continue
            delta = "" if x["verdict"] == "baseline" else f"{x['gain@100']:+.3f} ± {x['gain_se']:.3f}"
            cells += [f"{x['recall@100']:.3f} ± {x['recall@100_se']:.3f}", delta, x["verdict"]]
        table.add_row(r["variant"], *cells)
    console.print(table)


def main(argv=None) -> dict:
    from rich.console import Console

    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 170)
    torch.set_num_threads(args.threads)
    data = DataConfig.quick(args.data_seed) if args.quick else DataConfig(seed=args.data_seed)
    steps = args.steps or (40 if args.quick else 100)
    rerun = "  ".join(["$", ".venv/bin/python", "bench/encoder_ablation.py", *(argv if argv is not None else sys.argv[1:])])

    t0 = time.perf_counter()
    console.print(f"simulating {asdict(data)} ...")
    split = data.split()
    console.print(f"split: {split.stats}")
    setup_s = time.perf_counter() - t0
    rows, refs, stats = ablate(split, args, steps, console, "tuning")
    n = len(split.heldout)
    print_table(console, f"PLM4Job ablation (tuning marketplace, seed {data.seed}): recall@k of {n} held-out "
                         f"applies/hires over {len(split.candidate_jobs)} open jobs", rows, refs, stats)
    held = None
    if args.held_out:
        # every setting (steps, shape, prompt, seed) as chosen for the tuning marketplace
        console.print(f"simulating the {HELD_OUT_MARKETPLACE.label} ...")
        held_split = marketplace_split(config=HELD_OUT_MARKETPLACE.config, train_days=HELD_OUT_MARKETPLACE.train_days,
                                       similar_members=data.similar_members)
        console.print(f"split: {held_split.stats}")
        held_rows, held_refs, held_stats = ablate(held_split, args, steps, console, "held-out")
        print_table(console, f"PLM4Job ablation ({HELD_OUT_MARKETPLACE.label}): recall@k of "
                             f"{len(held_split.heldout)} held-out applies/hires over "
                             f"{len(held_split.candidate_jobs)} open jobs", held_rows, held_refs, held_stats)
        print_columns(console, rows, held_rows)
        held = {"data": held_stats, "references": held_refs, "rows": held_rows}
    report = {
        "data": stats, "steps": steps, "seed": args.seed, "threads": args.threads,
        "shape": asdict(ModelShape()), "prompt": asdict(PromptSpec(max_len=args.max_len)),
        "references": refs, "rows": rows, "held_out": held, "setup_seconds": round(setup_s, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1), "command": rerun,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}; total {report['wall_seconds']:.0f}s")
    console.print(f"rerun: {rerun}")
    return report


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
