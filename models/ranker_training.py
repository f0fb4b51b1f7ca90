"""Fine-tuning the ranker: every task of every job of a member in one packed pass.

A training row is one member prefix, the jobs shown to that member (their bodies),
and the tasks asked of each job (click, save, apply, dismiss ...), with a 0/1 label
per (job, task). Rows are packed with the block mask of `models.multi_item`, so one
forward pass trains every task of every job, each answer seeing only the prefix and
its own job, exactly as at serving time. The loss is the 2-way cross-entropy of the
Yes/No head at each answer position, weighted per task (dismiss is mostly noise);
a student distilled from a teacher mixes in the forward KL to the teacher's Yes/No at
each answer (`distillation_loss`; the teacher's answers from `models.distillation`).

Where the CPU time goes, and what this recipe does about it:
  * the token embeddings and the lower `frozen_blocks` decoder blocks are frozen and
    their output is computed once and cached (float16) for every later epoch, so an
    epoch after the first runs only the upper blocks, forward and backward;
  * rows are bucketed by length, so a batch pads little;
  * the answer is fitted on standardized hidden states with a bias, from the base
    rate (`Trainable`), with its own, higher learning rate;
  * bf16 autocast where the CPU computes bf16 natively (AVX512-BF16 / AMX), float32
    elsewhere (said once);
  * optionally LoRA adapters (peft) on the upper blocks instead of full weights.
The schedule is a warm-up then a cosine over the time (or step) budget.

Deterministic for a seed on a fixed thread count.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from infra.terminal import PLAIN_PROGRESS_S, PlainTicker
from models.cpu import native_bf16_cpu
from models.multi_item import PackedRows, answer_states, embed, row_length, run_blocks, yes_no_logits
from models.ranker import Ranker
from models.trained_blocks import answer_states_through

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int | None = None  # stop after this many optimizer steps ...
    budget_minutes: float | None = None  # ... or after this much time, whichever first
    epochs: int = 8  # upper bound on passes over the data
    tokens_per_step: int = 4096  # rows are batched up to this many (padded) tokens
    lr: float = 2e-4  # the trained blocks (or their LoRA adapters)
    head_lr: float = 2e-3  # the Yes/No rows
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int | None = None
    frozen_blocks: int = 0  # lower decoder blocks kept as they are (their output cached)
    lora_rank: int = 0  # >0: LoRA adapters of this rank on the trained blocks (peft)
    task_weights: dict = field(default_factory=lambda: {"dismiss": 0.3})
    # Added to the checkpoint's answer offset: the log share of negatives the training
    # rows kept (thinned negatives inflate the odds of Yes by its inverse).
    answer_shift: float = 0.0
    scaled_head: bool = True  # the answer fitted on standardized hidden states, from the base rate (Trainable)
    # Distillation (rows carry `teacher` log-odds): the loss is (1 - w) * hard-label BCE
    # + w * T^2 * forward KL(teacher || student) on each answer's Yes/No, at temperature T.
    distil_weight: float = 0.0
    distil_temperature: float = 2.0
    precision: str = "auto"  # auto: bf16 where the CPU has it natively, else float32
    # False: the member prefix runs the trained blocks without a graph; jobs read it as a
    # constant, its keys and values still learned (`models.trained_blocks`).
    prefix_backprop: bool = True
    progress: bool = True
    plain_progress_s: float = PLAIN_PROGRESS_S  # piped output (no bar): one status line this often


@dataclass
class TrainRow:
    """One member prefix, the jobs shown (verbalized bodies), the tasks asked of each,
    and labels[job][task] in {0, 1}."""

    prefix: str
    segments: list[str]
    tasks: list[str]
    labels: list[list[int]]
    phrasing: int = 0  # which phrasing of the task questions this row asks
    teacher: list[list[float]] | None = None  # a teacher's log-odds of Yes, [job][task] (distillation)


@dataclass
class TrainReport:
    steps: int = 0
    rows: int = 0
    candidates: int = 0  # jobs seen, counting repeats over epochs
    labels: int = 0  # (job, task) answers trained, counting repeats over epochs
    epochs: float = 0.0
    seconds: float = 0.0
    precision: str = "float32"
    losses: list[float] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)  # learning-curve points from `on_eval`
    stopped_by: str = ""

    @property
    def final_loss(self) -> float:
        tail = self.losses[-20:]
        return float(np.mean(tail)) if tail else float("nan")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- the machine ------------------------------------------------------------------------


def native_bf16() -> bool:
    """bf16 matmuls are only faster than float32 where the hardware does them."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return native_bf16_cpu()


def choose_precision(requested: str) -> torch.dtype:
    if requested == "fp32":
        return torch.float32
    if requested == "bf16":
        return torch.bfloat16
    if native_bf16():
        return torch.bfloat16
    print("precision: this CPU has no native bf16 (no AVX512-BF16/AMX): training in float32")
    return torch.float32


# ---- data ---------------------------------------------------------------------------------


@dataclass
class EncodedRow:
    prefix: list[int]
    bodies: list[list[int]]
    markers: list[list[int]]
    labels: torch.Tensor  # (jobs * tasks,) job-major, as pack_rows orders answers
    weights: torch.Tensor  # same shape: the task weight of each answer
    teacher: torch.Tensor | None = None  # same shape: a teacher's log-odds of Yes

    @property
    def n_tokens(self) -> int:
        return row_length(self.prefix, self.bodies, self.markers)


def encode_rows(ranker: Ranker, rows: Sequence[TrainRow], task_weights: dict) -> list[EncodedRow]:
    """Tokenize once; prefixes shared by several rows are encoded once."""
    prefixes: dict[str, list[int]] = {}
    bodies: dict[str, list[int]] = {}
    out = []
    for r in rows:
        if len(r.segments) != len(r.labels) or not r.segments or any(len(y) != len(r.tasks) for y in r.labels):
            raise ValueError(f"row with tasks {r.tasks} has {len(r.segments)} jobs and labels shaped "
                             f"{[len(y) for y in r.labels]}")
        if r.prefix not in prefixes:
            prefixes[r.prefix] = ranker.encode_prefix(r.prefix)
        for s in r.segments:
            if s not in bodies:
                bodies[s] = ranker.encode_segment(s)
        weights = [task_weights.get(t, 1.0) for t in r.tasks]
        out.append(EncodedRow(prefixes[r.prefix], [bodies[s] for s in r.segments],
                              ranker.encode_markers(r.tasks, r.phrasing),
                              torch.tensor([y for ys in r.labels for y in ys], dtype=torch.float32),
                              torch.tensor(weights * len(r.segments), dtype=torch.float32),
                              None if r.teacher is None else
                              torch.tensor([t for ts in r.teacher for t in ts], dtype=torch.float32)))
    return out


def bucket_batches(rows: Sequence[EncodedRow], tokens_per_step: int, apart: bool = False) -> list[list[int]]:
    """Row indices in batches of similar length, each at most `tokens_per_step` padded
    tokens (a longer row goes alone): padding is compute spent on nothing.

    `apart`: the prefixes and the rest of the rows are padded apart (training without
    backprop through the prefix, `models.trained_blocks`), so a batch costs its rows
    times (longest prefix + longest rest). Rows are then binned by the length of their
    rest (jobs shown vary from one to dozens), and sorted by prefix length within a bin:
    sorted by their total length alone, the two parts' lengths vary within a batch, and
    padding each part to its longest gave away most of what the cut saves."""
    prefix = [len(r.prefix) for r in rows]
    total = [r.n_tokens for r in rows]
    if apart:
        rest = np.array(total) - np.array(prefix)
        edges = np.quantile(rest, np.linspace(0, 1, REST_BINS + 1)[1:-1]) if len(rows) else []
        bins = np.digitize(rest, edges)
        order = sorted(range(len(rows)), key=lambda i: (bins[i], prefix[i], total[i]))
    else:
        order = sorted(range(len(rows)), key=lambda i: total[i])
    batches, current = [], []
    longest = (0, 0, 0)  # the batch's longest prefix, rest and whole row
    for i in order:
        grown = (max(longest[0], prefix[i]), max(longest[1], total[i] - prefix[i]), max(longest[2], total[i]))
        width = grown[0] + grown[1] if apart else grown[2]
        if current and width * (len(current) + 1) > tokens_per_step:
            batches.append(current)
            current, grown = [], (prefix[i], total[i] - prefix[i], total[i])
        current.append(i)
        longest = grown
    if current:
        batches.append(current)
    return batches


REST_BINS = 8  # `bucket_batches(apart=True)`: rows binned by the length after their prefix


# ---- the model's trained part -------------------------------------------------------------


@dataclass
class Trainable:
    """Which part of the model learns: blocks above `frozen`, the final norm, the head rows.

    The answer is a logistic regression on the final hidden state at each answer
    position, fitted as one should fit one: on standardized features, with a bias,
    starting at the labels' base rate (`scaled_head`, the default):

        logit(Yes) - logit(No) = (h - mean) / std . (head[0] - head[1]) + bias[0] - bias[1]

    with mean and std of h measured before training. Fitted on the raw h instead (the
    LM head's own rows, no bias), a decoder's hidden dimensions differ in scale by ~100x
    and share a large mean: every Adam step mostly moved a bias through the mean and
    the big dimensions, and the answer hardly learned. On a rule the prompt states
    outright (Yes iff the job's title holds the member's occupation; real prompts,
    today's recipe, 120 steps, 7.9k labels, logs-only probe), held-out AUC went from
    0.53 +/- 0.04 on the raw head to 0.89 +/- 0.02 standardized. The checkpoint keeps
    plain LM-head rows (`head_rows()`) and the bias they cannot hold as `answer_offset`
    (`offset()`), so it stays a causal LM any server reads.
    """

    ranker: Ranker
    frozen: int
    head: torch.nn.Parameter  # (2, d) Yes/No rows times `scale`
    scale: torch.Tensor  # (d,) spread of the final hidden state at answer positions
    mean: torch.Tensor  # (d,) its mean there
    bias: torch.nn.Parameter  # (2,) Yes/No offsets of the centered features
    lora: bool = False
    shift: float = 0.0  # added to the offset only (TrainConfig.answer_shift): training never sees it

    def head_rows(self) -> torch.Tensor:
        """The Yes/No rows of the LM head, in the model's own units."""
        return self.head / self.scale

    def offset(self) -> float:
        """What the rows alone leave out of logit(Yes) - logit(No): the checkpoint's
        `answer_offset`."""
        rows = self.head_rows().detach()
        bias = self.bias.detach()
        return float(bias[0] - bias[1] - self.mean @ (rows[0] - rows[1])) + self.shift

    @property
    def model(self):
        return self.ranker.model

    def layers(self):
        return _decoder(self.model).layers

    def lower(self, packed: PackedRows, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Output of the embeddings and frozen blocks (no gradient: it never changes),
        in the training precision: in float32 this pass cost twice the upper blocks'
        forward (bf16), and it runs once for every row the first epoch reads."""
        with torch.no_grad(), _autocast(_decoder_owner(self.model).device, dtype):
            hidden = embed(_decoder_owner(self.model), packed)
            return run_blocks(_decoder_owner(self.model), hidden, packed, self.layers()[: self.frozen])

    def upper_logits(self, hidden: torch.Tensor, packed: PackedRows, prefix_lengths: Sequence[int],
                     prefix_backprop: bool = True) -> torch.Tensor:
        owner = _decoder_owner(self.model)
        h = answer_states_through(owner, self.layers()[self.frozen:], hidden, packed, prefix_lengths, prefix_backprop)
        return yes_no_logits(owner, h - self.mean.to(h.dtype), 0, 0, head=self.head_rows()) + self.bias


def _decoder_owner(model):
    """The causal LM under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _decoder(model):
    return _decoder_owner(model).model


def answer_stats(ranker: Ranker, rows: Sequence[EncodedRow], sample: int = 64
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std), each (d,), of the final (normed) hidden state at the answer
    positions of up to `sample` rows, as the model stands before training."""
    model = ranker.model
    chosen = [rows[i] for i in np.linspace(0, len(rows) - 1, min(sample, len(rows))).astype(int)]
    states = []
    with torch.no_grad():
        for start in range(0, len(chosen), 8):
            batch = chosen[start:start + 8]
            packed = ranker.pack([(r.prefix, r.bodies, r.markers) for r in batch])
            states.append(answer_states(model, packed).float())
    h = torch.cat(states)
    return h.mean(0), h.std(0).clamp_min(1e-3)


def prepare_trainable(ranker: Ranker, cfg: TrainConfig, stats: tuple[torch.Tensor, torch.Tensor] | None = None,
                      base_rate: float | None = None) -> Trainable:
    """Freeze what does not learn. Without `stats` the answer is the LM head's own rows
    and the checkpoint's offset (the logits start where its scores are); with `stats`
    (mean, std: see `Trainable`) it starts with no direction, at `base_rate`."""
    model = ranker.model
    n_layers = len(model.model.layers)
    if not 0 <= cfg.frozen_blocks < n_layers:
        raise ValueError(f"frozen_blocks must be in 0..{n_layers - 1}, got {cfg.frozen_blocks}")
    for p in model.parameters():
        p.requires_grad_(False)
    trained = list(range(cfg.frozen_blocks, n_layers))
    if cfg.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                          layers_to_transform=trained)
        ranker.model = model = get_peft_model(model, lora)  # adapters trainable, the rest frozen
    else:
        for i in trained:
            model.model.layers[i].requires_grad_(True)
    _decoder(model).norm.requires_grad_(True)
    rows = _decoder_owner(model).get_output_embeddings().weight[[ranker.yes_id, ranker.no_id]].detach().clone()
    d = rows.shape[1]
    if stats is None:
        mean, scale, head, bias = rows.new_zeros(d), rows.new_ones(d), rows, [ranker.answer_offset, 0.0]
    else:  # no step is spent undoing the LM's own Yes/No leaning
        if base_rate is None or not 0 < base_rate < 1:
            raise ValueError(f"a standardized answer starts at a base rate in (0, 1), got {base_rate}")
        (mean, scale), head, bias = stats, torch.zeros_like(rows), [math.log(base_rate / (1 - base_rate)), 0.0]
    on = dict(dtype=rows.dtype, device=rows.device)  # the model's: CPU or a GPU
    return Trainable(ranker, cfg.frozen_blocks, torch.nn.Parameter(head), scale.to(**on), mean.to(**on),
                     torch.nn.Parameter(torch.tensor(bias, **on)), lora=cfg.lora_rank > 0, shift=cfg.answer_shift)


def finish(trainable: Trainable) -> None:
    """Back to a plain causal LM: LoRA merged into the weights, the head rows installed."""
    ranker = trainable.ranker
    if trainable.lora:
        ranker.model = ranker.model.merge_and_unload()
    ranker.install_answer_head(trainable.head_rows(), trainable.offset())
    for p in ranker.model.parameters():
        p.requires_grad_(False)
    ranker.model.eval()


def finished_copy(trainable: Trainable) -> Ranker:
    """A scoring copy of the ranker as training has it now (`finish` applied to a copy:
    head rows installed, LoRA merged); training goes on untouched. The tokenizer is shared."""
    twin = copy.deepcopy(trainable, memo={id(trainable.ranker.tokenizer): trainable.ranker.tokenizer})
    finish(twin)
    return twin.ranker


def _lr_scale(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over the first steps, then a cosine to 10% over the budget."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to the training precision on the model's device (off for float32); the
    packed ids are built on the CPU, so they cannot say where the model runs."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


def batch_loss(trainable: Trainable, rows: Sequence[EncodedRow], hidden: torch.Tensor, packed: PackedRows,
               dtype: torch.dtype, cfg: TrainConfig | None = None) -> torch.Tensor:
    with _autocast(hidden.device, dtype):
        logits = trainable.upper_logits(hidden.float(), packed, [len(r.prefix) for r in rows],
                                        cfg.prefix_backprop if cfg is not None else True).float()
    labels = torch.cat([r.labels for r in rows]).to(logits.device)
    weights = torch.cat([r.weights for r in rows]).to(logits.device)
    # 2-way softmax over [Yes, No] = a logistic on their difference.
    student = logits[:, 0] - logits[:, 1]
    per_answer = F.binary_cross_entropy_with_logits(student, labels, reduction="none")
    if cfg is not None and cfg.distil_weight > 0:
        per_answer = (1 - cfg.distil_weight) * per_answer + cfg.distil_weight * distillation_loss(
            student, _teacher_of(rows).to(student.device) - trainable.shift, cfg.distil_temperature)
    return (per_answer * weights).sum() / weights.sum()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per answer: T^2 * KL(teacher || student) of the two Yes/No distributions at
    temperature T, from log-odds. As a cross-entropy with the teacher's soft label,
    minus the teacher's own entropy, so a perfect student's loss is 0 (the T^2 keeps
    gradients on the hard loss's scale, as Hinton et al. do)."""
    t = temperature
    target = torch.sigmoid(teacher / t)
    cross = F.binary_cross_entropy_with_logits(student / t, target, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher / t, target, reduction="none")
    return t * t * (cross - entropy)


def _teacher_of(rows: Sequence[EncodedRow]) -> torch.Tensor:
    missing = sum(r.teacher is None for r in rows)
    if missing:
        raise ValueError(f"distillation needs the teacher's answers on every row; {missing} rows have none")
    return torch.cat([r.teacher for r in rows])


def train(ranker: Ranker, rows: Sequence[TrainRow], cfg: TrainConfig,
          on_eval: Callable[[TrainReport], dict | None] | None = None,
          eval_at: Sequence[int] = (),
          snapshot: Callable[[Ranker, TrainReport], None] | None = None) -> TrainReport:
    """Train in place, then leave the ranker a plain causal LM again (`finish`).

    `on_eval(report)` is called whenever the labels trained pass each of `eval_at`
    (and at the end); what it returns is appended to `report.curve`. `snapshot(copy,
    report)` is handed a finished copy of the ranker at each of `eval_at` (not at the
    end: the ranker itself is that), to save. Neither counts as training time.
    """
    if not rows:
        raise ValueError("no training rows")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    report = TrainReport()
    dtype = choose_precision(cfg.precision)
    report.precision = str(dtype).replace("torch.", "")
    encoded = encode_rows(ranker, rows, cfg.task_weights)
    batches = bucket_batches(encoded, cfg.tokens_per_step, apart=not cfg.prefix_backprop)
    if cfg.scaled_head:
        labels, weights = torch.cat([r.labels for r in encoded]), torch.cat([r.weights for r in encoded])
        rate = float((labels * weights).sum() / weights.sum())
        trainable = prepare_trainable(ranker, cfg, answer_stats(ranker, encoded), base_rate=rate)
    else:
        trainable = prepare_trainable(ranker, cfg)
    ranker.model.train()
    params = [p for p in ranker.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": cfg.lr},
        {"params": [trainable.head], "weight_decay": 0.0, "lr": cfg.head_lr},
        {"params": [trainable.bias], "weight_decay": 0.0, "lr": 10 * cfg.head_lr},
    ])
    base_lrs = [g["lr"] for g in opt.param_groups]
    cache: dict[int, torch.Tensor] = {}  # batch -> frozen blocks' output (float16)
    rng = random.Random(cfg.seed)
    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes else None
    total_steps = cfg.steps or cfg.epochs * len(batches)
    pending_evals = sorted(eval_at)
    bar = tqdm(total=total_steps if not budget_s else None, desc="train ranker", unit="step",
               disable=None if cfg.progress else True, mininterval=5)
    start = time.perf_counter()
    # Piped (CI logs, `| tee`) the bar is off: a plain line now and then instead.
    plain = PlainTicker(cfg.progress and bar.disable, cfg.plain_progress_s)

    def progress() -> float:
        nonlocal start
        by_steps = report.steps / total_steps
        return max(by_steps, (time.perf_counter() - start) / budget_s) if budget_s else by_steps

    try:
        for epoch in range(cfg.epochs):
            order = list(range(len(batches)))
            rng.shuffle(order)
            for b in order:
                if progress() >= 1.0:
                    report.stopped_by = "time budget" if budget_s and report.steps < total_steps else "steps"
                    return report
                batch = [encoded[i] for i in batches[b]]
                packed = ranker.pack([(r.prefix, r.bodies, r.markers) for r in batch])
                if b not in cache:
                    hidden = trainable.lower(packed, dtype)
                    cache[b] = hidden.to(torch.float16) if cfg.frozen_blocks else None
                hidden = cache[b] if cache[b] is not None else trainable.lower(packed, dtype)
                for g, lr in zip(opt.param_groups, base_lrs):
                    g["lr"] = lr * _lr_scale(report.steps, progress(), cfg)
                loss = batch_loss(trainable, batch, hidden, packed, dtype, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params + [trainable.head, trainable.bias], cfg.grad_clip)
                opt.step()
                report.steps += 1
                report.rows += len(batch)
                report.candidates += sum(len(r.bodies) for r in batch)
                report.labels += sum(len(r.labels) for r in batch)
                report.epochs = epoch + (order.index(b) + 1) / len(order)
                report.losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{report.final_loss:.4f}", labels=report.labels, epoch=f"{report.epochs:.2f}")
                if plain.due():
                    print(f"train ranker: {report.steps} steps, {report.labels:,} labels, epoch {report.epochs:.2f}, "
                          f"loss {report.final_loss:.4f}, {(time.perf_counter() - start) / 60:.1f} min", flush=True)
                while pending_evals and report.labels >= pending_evals[0]:
                    pending_evals.pop(0)
                    t_eval = time.perf_counter()
                    report.seconds = t_eval - start
                    if on_eval is not None:
                        _evaluate(trainable, report, on_eval)
                    if snapshot is not None:
                        snapshot(finished_copy(trainable), report)
                    start += time.perf_counter() - t_eval  # probing and saving are not training time
        report.stopped_by = "epochs"
        return report
    finally:
        report.seconds = time.perf_counter() - start
        bar.close()
        if on_eval is not None:
            _evaluate(trainable, report, on_eval)
        finish(trainable)


def _evaluate(trainable: Trainable, report: TrainReport, on_eval) -> None:
    """Score with the head rows and offset as they are now (swapped into a copy of the
    LM head and the ranker's meta for the call), then go on training."""
    ranker = trainable.ranker
    owner = _decoder_owner(ranker.model)
    lm_head = owner.get_output_embeddings()
    saved = lm_head.weight
    rows = torch.tensor([ranker.yes_id, ranker.no_id])
    temp = saved.detach().clone()
    temp[rows] = trainable.head_rows().detach()
    lm_head.weight = torch.nn.Parameter(temp, requires_grad=False)
    model, ranker.model = ranker.model, owner
    offset = ranker.meta.get("answer_offset")
    ranker.meta["answer_offset"] = trainable.offset()
    owner.eval()
    try:
        point = on_eval(report)
    finally:
        ranker.model = model
        lm_head.weight = saved
        if offset is None:
            ranker.meta.pop("answer_offset")
        else:
            ranker.meta["answer_offset"] = offset
        model.train()
    if point:
        report.curve.append({"labels": report.labels, "candidates": report.candidates, **point})


def model_card(name: str, base: str, tasks: Sequence[str], data: str, report: TrainReport, recipe: dict,
               metrics_table: str = "") -> str:
    """README.md for a checkpoint: what it is, what it saw, how it did."""
    recipe_lines = "\n".join(f"  - {k}: {v}" for k, v in recipe.items())
    return f"""# {name}

360Brew-style multi-task ranker: a decoder-only causal LM reads one prompt (instruction,
member profile, past job interactions grouped by action, the question job) and answers
" Yes" / " No" to a short question per task after the job. Score = softmax over the
" Yes" / " No" logits at that question's last token, `answer_offset` (ranker.json)
added to the " Yes" logit.

- base: {base}
- tasks (each a question, not a head): {", ".join(tasks)}
- training data: {data}
- recipe:
{recipe_lines}
- training: {report.steps} steps, {report.epochs:.2f} epochs, {report.candidates} jobs and {report.labels}
  (job, task) labels seen, {report.seconds / 60:.1f} min, {report.precision}, stopped by
  {report.stopped_by or "end"}, final loss {report.final_loss:.4f}

## Use

    from models.ranker import Ranker
    ranker = Ranker.load("<this folder>")
    p = ranker.score_tasks(prefix, jobs, ["click", "apply"])   # (jobs, tasks) p(Yes)

{metrics_table}
"""
