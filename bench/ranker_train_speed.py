"""Ranker training throughput: the recipe before issue 12 against today's, same data,
same model, same threads, in one run: (job, task) labels trained per CPU-second.

    python bench/ranker_train_speed.py                 # 2 x 240 s of training
    python bench/ranker_train_speed.py --seconds 120 --members 60

Protocol (fixed before the first run):
- Data: one simulated marketplace's training days; both recipes read the same examples.
- Model: SmolLM2-135M-Instruct's first 8 decoder blocks, float32 unless the CPU has bf16.
- Before (as of commit d28e893, reproduced here): one row per (slate, task) with at
  most 8 jobs, a task instruction in each prefix, the verbose five-line job segment
  (64-token cap) and a 224-token prefix that skips views; every parameter trained
  (embeddings included) by AdamW, 8 rows a step, float32.
- Now: `models.ranker_training.train` with the `pruned` preset on
  `serving.training.ranker_pipeline.training_rows` (every task of a member-day's jobs in one
  row, lower 4 blocks frozen and cached, length buckets, bf16 where native; since
  2026-12-06 the trained blocks run by hand, the last at the answers only:
  `models.trained_blocks`).
- Now, prefix constant (added 2026-12-06, before its first run): the same, with
  `TrainConfig.prefix_backprop=False` (the member prefix a constant above the frozen
  blocks, `models.trained_blocks`; an option, not the default). Same rows, same seconds.
- Each recipe trains for `--seconds` of wall time; the figure is labels trained per
  CPU-second of this process (`time.process_time`: robust to other load on the
  machine), with labels per wall second beside it. A label is one (job, task) answer
  with its loss, which is what one row of the old recipe's candidates was.
The ratio is the figure to compare (target: at least 15).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


# ---- the recipe before (d28e893), kept here as the reference ------------------------------

OLD_INSTRUCTION = {
    "apply": "You will be given a member's profile and past job interactions. Predict whether the member will apply to the question job.",
    "click": "You will be given a member's profile and past job interactions. Predict whether the member will click on the question job.",
    "save": "You will be given a member's profile and past job interactions. Predict whether the member will save the question job for later.",
    "dismiss": "You will be given a member's profile and past job interactions. Predict whether the member will dismiss the question job as not relevant.",
    "hire": "You will be given a member's profile and past job interactions. Predict whether the member is qualified for and would be hired into the question job.",
    "search_relevance": "You will be given a member's profile, their search query and past job interactions. Predict whether the question job is relevant to the member's search.",
}
OLD_PHRASE = {"hired": "Member was hired into the following jobs", "apply": "Member has applied to the following jobs",
              "save": "Member has saved the following jobs", "click": "Member has clicked on the following jobs",
              "dismiss": "Member has dismissed the following jobs", "search": "Member has searched for"}


def old_prefix(ex, tokenizer, max_tokens: int = 224) -> str:
    from models.verbalizer import fence, plain

    p = ex.profile
    profile = "\n".join([f"Current title: {plain(p.title)}", f"Occupation: {plain(p.occupation)}",
                         f"Seniority: {p.seniority.value}, {p.years_experience:g} years of experience",
                         f"Location: {plain(p.location)}", f"Skills: {', '.join(plain(s) for s in p.skills)}",
                         f"About (member-written): {fence(p.about)}"])
    head = f"## Instruction\n{OLD_INSTRUCTION[ex.task]}\n\n## Member Profile\n{profile}\n\n"
    if ex.query:
        head += f"Current search query: {fence(ex.query, limit=120)}\n\n"
    items = sorted((it for it in ex.history if it.action != "view"), key=lambda it: -it.event_time)

    def render(n: int) -> str:
        groups: dict[str, list[str]] = {}
        for it in items[:n]:
            days = int((ex.request_time - it.event_time) // 86400)
            what = fence(it.query or "") if it.action == "search" else f"{it.job.title}, {it.job.company}, {it.job.location}"
            groups.setdefault(it.action, []).append(f"[{days} days ago, {what}]")
        lines = [f"{OLD_PHRASE[a]}: " + "; ".join(v) for a, v in groups.items()] or ["No past interactions."]
        return head + "## Past job interaction data\n" + "\n".join(lines) + "\n\n"

    n = len(items)
    while n > 0 and len(tokenizer(render(n)).input_ids) > max_tokens:
        n -= 1
    return render(n)


def old_segment(job) -> str:
    return (f"## Question\nTitle: {job.title}\nCompany: {job.company_name}\nLocation: {job.location}\n"
            f"Seniority: {job.seniority.value}\nSkills: {', '.join(job.skills[:8])}\n## Answer:")


def old_rows(examples, tokenizer, seed: int = 0):
    """One row per (slate, task), at most 8 jobs, all-negative rows kept at 35%."""
    from serving.training.ranker_pipeline import groups_of

    rng = random.Random(seed)
    rows = []
    for (_, task), group in sorted(groups_of(examples).items()):
        labels = [ex.label for ex in group]
        if not any(labels) and rng.random() > 0.35:
            continue
        prefix = old_prefix(group[0], tokenizer)
        for i in range(0, len(group), 8):
            chunk = group[i:i + 8]
            rows.append((prefix, [old_segment(ex.job) for ex in chunk], [ex.label for ex in chunk]))
    rng.shuffle(rows)
    return rows


def train_old(ranker, rows, seconds: float) -> dict:
    import torch
    import torch.nn.functional as F

    from models.multi_item import answer_logits, pack_rows

    tok = ranker.tokenizer
    answer = tok(":", add_special_tokens=False).input_ids  # every old segment ended "## Answer:"
    enc = []
    for prefix, segs, labels in rows:
        # the old 64-token cap kept the answer header; the score was read at its ":"
        bodies = [tok(s[:-1], add_special_tokens=False).input_ids[:64 - len(answer)] for s in segs]
        enc.append((tok(prefix, add_special_tokens=False).input_ids, bodies, labels))
    model = ranker.model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    labels_done = tokens = steps = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    order = list(range(len(enc)))
    while time.perf_counter() - wall0 < seconds:
        random.shuffle(order)
        for i in range(0, len(order), 8):
            if time.perf_counter() - wall0 >= seconds:
                break
            batch = [enc[j] for j in order[i:i + 8]]
            # one task per row: its segments share the answer token as their one marker
            packed = pack_rows([(p, bodies, [answer]) for p, bodies, _ in batch])
            logits_all = answer_logits(model, packed, ranker.yes_id, ranker.no_id)
            targets = torch.tensor([1 - y for _, _, ys in batch for y in ys])
            loss = F.cross_entropy(logits_all.float(), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            labels_done += len(targets)
            tokens += int(packed.input_ids.numel())
    return {"steps": steps, "labels": labels_done, "padded_tokens": tokens,
            "wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0}


def train_new(ranker, rows, seconds: float, prefix_backprop: bool | None = None) -> dict:
    from models.ranker_training import train
    from serving.training.ranker_pipeline import recipe_config

    cfg = recipe_config("pruned", budget_minutes=seconds / 60, epochs=1000, prefix_backprop=prefix_backprop)
    cpu0 = time.process_time()
    report = train(ranker, rows, cfg)
    return {"steps": report.steps, "labels": report.labels, "epochs": round(report.epochs, 2),
            "wall_s": report.seconds, "cpu_s": time.process_time() - cpu0, "precision": report.precision}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=240, help="wall seconds of training per recipe")
    ap.add_argument("--members", type=int, default=80)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from serving.training.ranker_pipeline import PromptCache, new_ranker, simulated_split, training_rows

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, {args.threads} torch threads; torch {torch.__version__}")
    split = simulated_split(n_members=args.members, days=args.days, seed=args.seed, progress=False)
    print(split.description)

    ranker = new_ranker("pruned", seed=args.seed)
    before = old_rows(split.train, ranker.tokenizer, args.seed)
    print(f"before: {len(before)} rows, {sum(len(r[2]) for r in before)} labels per epoch")
    old = train_old(ranker, before, args.seconds)

    ranker = new_ranker("pruned", seed=args.seed)
    # Every job kept, as the old recipe kept them: this measures labels per CPU-second,
    # which thinning negatives (`hirestream train ranker --keep-negatives`) lowers on purpose.
    now_rows = training_rows(split.train, PromptCache(ranker), seed=args.seed, keep_negatives=1.0)
    print(f"now: {len(now_rows)} rows, {sum(len(r.labels) * len(r.tasks) for r in now_rows)} labels per epoch")
    new = train_new(ranker, now_rows, args.seconds)
    ranker = new_ranker("pruned", seed=args.seed)
    constant = train_new(ranker, now_rows, args.seconds, prefix_backprop=False)

    table = [("recipe", "steps", "labels", "wall s", "CPU s", "labels / CPU-s", "labels / wall-s")]
    for name, r in (("before (d28e893)", old), ("now", new), ("now, prefix constant", constant)):
        table.append((name, r["steps"], r["labels"], f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}",
                      f"{r['labels'] / r['cpu_s']:.2f}", f"{r['labels'] / r['wall_s']:.2f}"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    ratio_cpu = (new["labels"] / new["cpu_s"]) / (old["labels"] / old["cpu_s"])
    ratio_wall = (new["labels"] / new["wall_s"]) / (old["labels"] / old["wall_s"])
    print(f"now / before: {ratio_cpu:.1f}x labels per CPU-second ({ratio_wall:.1f}x per wall second); target >= 15x")
    ratio_constant = (constant["labels"] / constant["cpu_s"]) / (old["labels"] / old["cpu_s"])
    print(f"now with the prefix constant / before: {ratio_constant:.1f}x labels per CPU-second")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ranker_train_speed.json").write_text(json.dumps(
        {"cpu": cpu_name(), "threads": args.threads, "data": split.description, "before": old, "now": new,
         "now_prefix_constant": constant, "ratio_cpu": ratio_cpu, "ratio_wall": ratio_wall,
         "ratio_cpu_prefix_constant": ratio_constant}, indent=2))
    print(f"rerun: python bench/ranker_train_speed.py --seconds {args.seconds:g} --members {args.members} "
          f"--days {args.days} --seed {args.seed} --threads {args.threads}")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
