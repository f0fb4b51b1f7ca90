"""Can the ranker learn a rule its prompt states outright? The answer's fit, isolated.

Real prompts from the simulated marketplace (the pipeline's `training_rows`), labels
replaced by a rule the text states: Yes iff the job's title holds the member's
occupation (the profile title without its level word), every task alike. Today's
recipe (`pruned` preset) for a fixed number of steps, with the answer fitted either on
the LM head's raw rows (`--arm raw`, the recipe before 2026-12-04) or on standardized
hidden states with a bias from the base rate (`--arm standardized`, `Trainable`).
Prints AUC (SE clustered by row) on the jobs of held-out rows and of training rows at
four points. Steps, not seconds: another load on the machine changes nothing.

    .venv/bin/python bench/ranker_answer_fit.py --arm raw --threads 2
    .venv/bin/python bench/ranker_answer_fit.py --arm standardized --threads 2
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402
from models.ranker_training import TrainRow, train  # noqa: E402
from serving.evaluation.metrics import auc_se  # noqa: E402
from serving.training.ranker_pipeline import (  # noqa: E402
    PromptCache, new_ranker, recipe_config, simulated_split, training_rows,
)

LEVELS = {"Junior", "Senior", "Lead", "Head", "Principal", "Chief", "Staff", "Intern", "Associate", "Trainee", "Mid"}


def occupation(prefix: str) -> str:
    title = prefix.split("## Member Profile\n", 1)[1].split(";", 1)[0].strip()
    words = title.split()
    return " ".join(words[1:] if words and words[0] in LEVELS else words)


def job_title(segment: str) -> str:
    return segment.split("\n", 2)[1].split(" | ", 1)[0]


def relabel(rows: list[TrainRow]) -> list[TrainRow]:
    """The same prompts, labelled by the stated rule."""
    out = []
    for r in rows:
        occ = occupation(r.prefix).lower()
        labels = [[int(occ in job_title(s).lower())] * len(r.tasks) for s in r.segments]
        out.append(TrainRow(r.prefix, r.segments, r.tasks, labels, r.phrasing))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arm", choices=("raw", "standardized"), required=True)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--rows", type=int, default=1500, help="training rows (member-days)")
    ap.add_argument("--eval-rows", type=int, default=100, help="held-out and training rows scored")
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_name()}; torch threads {args.threads}", flush=True)
    split = simulated_split(n_members=args.members, days=21, progress=False)
    ranker = new_ranker("pruned")
    prompts = PromptCache(ranker)
    train_rows = relabel(training_rows(split.train, prompts, max_groups=args.rows))
    held_rows = relabel(training_rows(split.held_out, prompts, seed=1, max_groups=args.eval_rows))
    share = np.mean([y[0] for r in train_rows for y in r.labels])
    print(f"{len(train_rows)} training rows, Yes share {share:.3f}; arm {args.arm}, {args.steps} steps", flush=True)

    def auc(rows: list[TrainRow]) -> str:
        scores, labels, clusters = [], [], []
        for i, r in enumerate(rows):
            scores += list(ranker.score_tasks(r.prefix, r.segments, ["click"], r.phrasing)[:, 0])
            labels += [y[0] for y in r.labels]
            clusters += [i] * len(r.segments)
        a, se = auc_se(np.array(scores), np.array(labels), clusters=clusters)
        return f"{a:.3f} ± {se:.3f}"

    print("| step | labels | loss | held-out AUC | train AUC |\n|---|---|---|---|---|", flush=True)

    def on_eval(report) -> None:
        print(f"| {report.steps} | {report.labels} | {report.final_loss:.4f} | {auc(held_rows[:args.eval_rows])} "
              f"| {auc(train_rows[:args.eval_rows])} |", flush=True)

    cfg = recipe_config("pruned", steps=args.steps, scaled_head=args.arm == "standardized", threads=args.threads,
                        progress=False)
    t = time.perf_counter()
    per_step = 60  # ~labels per step at 4,096 tokens: evaluation points near 1/4, 1/2, 3/4 of the run
    report = train(ranker, train_rows, cfg, on_eval=on_eval, eval_at=[per_step * args.steps * q // 4 for q in (1, 2, 3)])
    print(f"{report.steps} steps, {report.labels} labels, {time.perf_counter() - t:.0f} s, {report.precision}")
    print("rerun: .venv/bin/python bench/ranker_answer_fit.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
