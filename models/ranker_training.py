"""Fine-tuning the ranker: Yes/No cross-entropy at answer positions, multi-item rows.

A training row is one member prefix and up to a few candidate segments with a label
each (a slate of impressions, one task). Rows are packed with the block mask of
`models.multi_item`, so one forward pass trains on every candidate of the row, each
seeing only the prefix and itself, exactly as at serving time. The loss is the
2-way cross-entropy of the Yes/No head at each segment's answer position: the
49k-way lm_head is never applied, which is most of the saving NOTES measured.

Deterministic: one seed drives the shuffles and the init; a time or step budget ends
training; progress is a tqdm bar with the running loss.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.multi_item import answer_logits, pack_rows
from models.ranker import Ranker


@dataclass
class TrainConfig:
    steps: int | None = None  # stop after this many optimizer steps ...
    budget_minutes: float | None = None  # ... or after this much time, whichever first
    epochs: int = 50  # upper bound when neither is set
    rows_per_step: int = 8
    lr: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int | None = None
    freeze_embeddings: bool = False  # keep (teacher-initialized) token embeddings as they are
    progress: bool = True


@dataclass
class TrainRow:
    """One member prefix, its candidate job segments, a 0/1 label per segment."""

    prefix: str
    segments: list[str]
    labels: list[int]
    task: str = ""


@dataclass
class TrainReport:
    steps: int = 0
    rows: int = 0
    candidates: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    stopped_by: str = ""

    @property
    def final_loss(self) -> float:
        tail = self.losses[-20:]
        return float(np.mean(tail)) if tail else float("nan")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode_rows(ranker: Ranker, rows: Sequence[TrainRow]):
    """Tokenize once, caching prefixes (rows of one slate share them across tasks)."""
    cache: dict[str, list[int]] = {}
    out = []
    for r in rows:
        if len(r.segments) != len(r.labels) or not r.segments:
            raise ValueError(f"row for task {r.task!r} has {len(r.segments)} segments and {len(r.labels)} labels")
        if r.prefix not in cache:
            cache[r.prefix] = ranker.encode_prefix(r.prefix)
        out.append((cache[r.prefix], [ranker.encode_segment(s) for s in r.segments], list(r.labels)))
    return out


def row_loss(ranker: Ranker, encoded_batch) -> tuple[torch.Tensor, int]:
    """Mean Yes/No cross-entropy over every candidate in the batch of encoded rows."""
    packed = pack_rows([(p, s) for p, s, _ in encoded_batch], pad_id=ranker.tokenizer.pad_token_id or 0)
    logits = answer_logits(ranker.model, packed, ranker.yes_id, ranker.no_id)
    labels = torch.tensor([y for _, _, ys in encoded_batch for y in ys], device=logits.device)
    target = 1 - labels  # class 0 is " Yes"
    return F.cross_entropy(logits.float(), target), len(labels)


def _lr_at(step: int, cfg: TrainConfig, total: int | None) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total is None:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(ranker: Ranker, rows: Sequence[TrainRow], cfg: TrainConfig,
          on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """Train in place; returns what happened. Uses the ranker's device (GPU if it is on one)."""
    if not rows:
        raise ValueError("no training rows")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    encoded = encode_rows(ranker, rows)
    model = ranker.model.train()
    # Frozen embeddings: a 49k x d table is most of a small model's parameters and of
    # its optimizer time, and the few thousand rows training sees would drift apart
    # from the tens of thousands it never sees.
    model.get_input_embeddings().weight.requires_grad_(not cfg.freeze_embeddings)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    rng = random.Random(cfg.seed)
    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes else None
    total = cfg.steps or (None if budget_s else cfg.epochs * math.ceil(len(encoded) / cfg.rows_per_step))
    report = TrainReport()
    bar = tqdm(total=total, desc="train ranker", unit="step", disable=not cfg.progress)
    start = time.perf_counter()
    step = 0
    try:
        while True:
            order = list(range(len(encoded)))
            rng.shuffle(order)
            for i in range(0, len(order), cfg.rows_per_step):
                if total is not None and step >= total:
                    report.stopped_by = "steps"
                    return report
                if budget_s is not None and time.perf_counter() - start >= budget_s:
                    report.stopped_by = "time budget"
                    return report
                batch = [encoded[j] for j in order[i:i + cfg.rows_per_step]]
                for g in opt.param_groups:
                    g["lr"] = _lr_at(step, cfg, total)
                loss, n = row_loss(ranker, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
                opt.step()
                step += 1
                report.steps, report.rows, report.candidates = step, report.rows + len(batch), report.candidates + n
                report.losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{report.final_loss:.4f}", cand=report.candidates)
                if on_step is not None:
                    on_step(step, report.losses[-1])
    finally:
        report.seconds = time.perf_counter() - start
        bar.close()
        model.eval()


def model_card(name: str, base: str, tasks: Sequence[str], data: str, report: TrainReport,
               metrics_table: str = "") -> str:
    """README.md for a checkpoint: what it is, what it saw, how it did."""
    return f"""# {name}

360Brew-style multi-task ranker: a decoder-only causal LM that answers " Yes" / " No"
to a prompt of instruction + member profile + past job interactions + question job.
Score = softmax over the " Yes" / " No" logits at the answer position.

- base: {base}
- tasks (each an instruction, not a head): {", ".join(tasks)}
- training data: {data}
- training: {report.steps} steps, {report.rows} rows, {report.candidates} labelled candidates,
  {report.seconds / 60:.1f} min, stopped by {report.stopped_by or "end"}, final loss {report.final_loss:.4f}

## Use

    from models.ranker import Ranker
    ranker = Ranker.load("<this folder>")
    scores = ranker.score(prompt.prefix, [segment, ...])   # p(Yes) per candidate

{metrics_table}
"""
