"""How fast the quality bench's evaluation path scores held-out slates, by how slates
share a pass: one slate a pass (the CPU's default), `--slates-per-pass` slates a pass
with each member's jobs in batches of their own, and the same with job batches that mix
members (`mix_prefixes`, the GPU's default). Written for the GPU, where an H200 took
over 2 minutes for ~2,600 slates of the teacher (one small pass per member); it runs
on a CPU too.

    python bench/ranker_eval_speed.py --ranker artifacts/ranker-curve --slates 200
    python bench/ranker_eval_speed.py --layers 30 --slates 400 --slates-per-pass 32   # the untrained teacher, on a GPU

Protocol (fixed before the first run): held-out slates of one simulated marketplace
(`--members`, 21 days, seed 0), the first `--slates` in slate order; each arrangement
scores them all once after a warm-up pass over the first 8 (not timed); slates/s and
the ratio to one slate a pass; every arrangement's scores are checked against one
slate a pass (max |difference| printed: the arrangements compute the same thing).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402
from serving.training.ranker_pipeline import PromptCache, score_examples, simulated_split, slates_of  # noqa: E402


def load_ranker(args):
    import torch

    from models.ranker import Ranker, default_device
    from serving.training.ranker_pipeline import BUDGET
    from streams.settings import get_settings

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ranker:
        return Ranker.load(args.ranker), Path(args.ranker).name
    teacher = Ranker.teacher(BUDGET, layers=args.layers if args.layers < 30 else None,
                             artifacts=get_settings().artifacts_dir)
    return teacher.to(default_device()), f"untrained SmolLM2 teacher, {args.layers} blocks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranker", default=None, help="checkpoint folder (default: the untrained teacher)")
    ap.add_argument("--layers", type=int, default=30, help="teacher blocks kept, without --ranker")
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--slates", type=int, default=200)
    ap.add_argument("--slates-per-pass", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ranker, name = load_ranker(args)
    print(f"CPU: {cpu_name()}; device: {ranker.device}; ranker: {name}", flush=True)
    split = simulated_split(args.members, 21, seed=0, progress=False)
    slates = [group for _, group in sorted(slates_of(split.held_out).items())][:args.slates]
    examples = [ex for group in slates for ex in group]
    warm = [ex for group in slates[:8] for ex in group]
    arrangements = {"one slate a pass": dict(slates_per_pass=1),
                    f"{args.slates_per_pass} a pass, a batch per member": dict(slates_per_pass=args.slates_per_pass,
                                                                                 mix_prefixes=False),
                    f"{args.slates_per_pass} a pass, members mixed": dict(slates_per_pass=args.slates_per_pass,
                                                                           mix_prefixes=True)}
    rows, reference = [], None
    for label, kw in arrangements.items():
        score_examples(ranker, warm, PromptCache(ranker), progress=False, **kw)
        prompts = PromptCache(ranker)
        t = time.perf_counter()
        scores = score_examples(ranker, examples, prompts, progress=False, **kw)
        seconds = time.perf_counter() - t
        reference = scores if reference is None else reference
        rows.append((label, seconds, len(slates) / seconds, float(np.abs(scores - reference).max())))
        print(f"{label}: {seconds:.1f} s", flush=True)
    base = rows[0][2]
    print(f"\n{len(slates)} held-out slates, {len(examples)} examples ({args.members} members, seed 0)")
    print(f"{'arrangement':<40} {'seconds':>8} {'slates/s':>9} {'x one a pass':>13} {'max |diff|':>11}")
    for label, seconds, rate, diff in rows:
        print(f"{label:<40} {seconds:>8.1f} {rate:>9.1f} {rate / base:>13.2f} {diff:>11.2e}")
    print("rerun: python " + " ".join(sys.argv))


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()
    main()
