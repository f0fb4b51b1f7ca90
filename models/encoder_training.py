"""Training and exporting the PLM4Job encoder: tokenizer, prompt batches, link prediction.

Link prediction is the task: for each observed member-job application or hire, the
member's ego-graph embedding should be nearer the job's than any other job in the
batch (in-batch negatives, symmetric InfoNCE). The predicted edge is hidden from both
ego graphs, otherwise the member's prompt would contain the answer.

The tokenizer is a small WordPiece trained on the marketplace's own node texts (titles,
skills, locations, company names): an 8k vocabulary keeps the embedding table at ~1M
parameters, where a general 49k-token LM vocabulary would be most of a CPU-sized
encoder, and it is saved beside the model so a checkpoint is self-contained.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.ego_graph import UNREACHABLE, EgoGraph, EgoPrompt, HeteroGraph, Link, ego_graph, ego_prompt
from models.encoder import EncoderConfig, PLM4JobEncoder

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---- tokenizer ---------------------------------------------------------------------------


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000):
    """A lowercase WordPiece tokenizer fitted to `texts`, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


# ---- prompts and batches -----------------------------------------------------------------


@dataclass(frozen=True)
class PromptSpec:
    """How an ego graph becomes a prompt; saved with the model so serving builds the same."""

    max_len: int = 64
    ego_tokens: int = 32
    neighbour_tokens: int = 10  # a neighbour's title and the start of its next field
    fanout: tuple[int, ...] = (4, 3)  # nodes kept at hop 1, hop 2 (() = node text only)
    max_hop: int = 3

    @classmethod
    def from_dict(cls, d: dict) -> "PromptSpec":
        return cls(**{**d, "fanout": tuple(d.get("fanout", ()))})


class PromptBuilder:
    """Ego graph -> EgoPrompt -> padded tensors; tokenizes each node text once."""

    def __init__(self, tokenizer, spec: PromptSpec = PromptSpec()):
        self.tokenizer = tokenizer
        self.spec = spec
        self._ids: dict[str, list[int]] = {}

    def with_spec(self, spec: PromptSpec) -> "PromptBuilder":
        """Another prompt shape over the same tokenizer, sharing the token cache."""
        other = PromptBuilder(self.tokenizer, spec)
        other._ids = self._ids
        return other

    def tokenize(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def warm(self, texts: Sequence[str], batch_size: int = 1024) -> None:
        """Tokenize many texts in batches (much faster than one at a time)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._ids]
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            for t, ids in zip(chunk, self.tokenizer(chunk, add_special_tokens=False)["input_ids"]):
                self._ids[t] = ids

    def ego(self, graph: HeteroGraph, center: str, exclude_edges=()) -> EgoGraph:
        """The neighbourhood a prompt of this spec is drawn from (before max_len cuts it)."""
        return ego_graph(graph, center, fanout=self.spec.fanout, exclude_edges=exclude_edges)

    def prompt_of(self, ego: EgoGraph) -> EgoPrompt:
        s = self.spec
        return ego_prompt(
            ego, self.tokenize, cls_id=self.tokenizer.cls_token_id, sep_id=self.tokenizer.sep_token_id,
            max_len=s.max_len, ego_tokens=s.ego_tokens, neighbour_tokens=s.neighbour_tokens, max_hop=s.max_hop,
        )

    def prompt(self, graph: HeteroGraph, center: str, exclude_edges=()) -> EgoPrompt:
        return self.prompt_of(self.ego(graph, center, exclude_edges))

    def collate(self, prompts: Sequence[EgoPrompt], device="cpu") -> dict[str, torch.Tensor]:
        B = len(prompts)
        T = max(len(p.input_ids) for p in prompts)
        N = max(len(p.node_distances) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((B, T), pad, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.bool)
        node_index = torch.full((B, T), -1, dtype=torch.long)
        type_ids = torch.zeros((B, T), dtype=torch.long)
        hop_ids = torch.zeros((B, T), dtype=torch.long)
        dist = torch.full((B, N, N), UNREACHABLE, dtype=torch.long)
        for b, p in enumerate(prompts):
            n = len(p.input_ids)
            input_ids[b, :n] = torch.tensor(p.input_ids)
            mask[b, :n] = True
            node_index[b, :n] = torch.tensor(p.node_index)
            type_ids[b, :n] = torch.tensor(p.type_ids)
            hop_ids[b, :n] = torch.tensor(p.hop_ids)
            k = len(p.node_distances)
            dist[b, :k, :k] = torch.tensor(p.node_distances)
        batch = dict(input_ids=input_ids, attention_mask=mask, type_ids=type_ids, hop_ids=hop_ids,
                     node_index=node_index, node_distances=dist)
        return {k: v.to(device) for k, v in batch.items()}


# ---- link prediction -------------------------------------------------------------------


def info_nce(member_z, job_z, member_ids: Sequence[str], job_ids: Sequence[str], logit_scale):
    """Symmetric InfoNCE over in-batch negatives.

    Pair (i, k) is a true link, not a negative, when member i == member k (member i also
    applied to job k) or job i == job k; those off-diagonal pairs are masked out of both
    directions rather than pushed apart.
    """
    logits = logit_scale.exp().clamp(max=100) * member_z @ job_z.T
    dev = logits.device
    same_job = torch.tensor([[a == b for b in job_ids] for a in job_ids], device=dev)
    same_member = torch.tensor([[a == b for b in member_ids] for a in member_ids], device=dev)
    also_linked = (same_job | same_member) & ~torch.eye(len(job_ids), dtype=torch.bool, device=dev)
    target = torch.arange(len(job_ids), device=dev)
    m2j = logits.masked_fill(also_linked, float("-inf"))  # row i: member i vs the batch's jobs
    j2m = logits.T.masked_fill(also_linked, float("-inf"))  # row i: job i vs the batch's members
    return (F.cross_entropy(m2j, target) + F.cross_entropy(j2m, target)) / 2


@dataclass
class TrainConfig:
    max_steps: int = 1000
    time_budget_s: float | None = None  # stop at whichever budget is hit first
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 10
    grad_clip: float = 1.0
    alignment_lr_multiplier: float = 50.0  # see train_link_prediction
    seed: int = 0
    device: str = "auto"  # cuda when present, else cpu


@dataclass
class TrainResult:
    steps: int
    seconds: float
    examples: int
    losses: list[float] = field(default_factory=list)  # one per step

    def mean_loss(self, first: int | None = None, last: int | None = None) -> float:
        xs = self.losses[:first] if first else self.losses[-last:] if last else self.losses
        return float(np.mean(xs)) if xs else float("nan")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay over the budget (steps or time, whichever runs out first)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_link_prediction(
    model: PLM4JobEncoder,
    builder: PromptBuilder,
    graph: HeteroGraph,
    links: Sequence[Link],
    cfg: TrainConfig,
    *,
    progress: bool = True,
) -> TrainResult:
    """Contrastive member-job training on `links`; stops at max_steps or time_budget_s."""
    if not links:
        raise ValueError("no links to train on (no applications or hires in the training window)")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device).train()
    # The alignment table is a few dozen attention-logit offsets; at the base rate Adam
    # moves each by at most lr per step (~0.2 over 100 steps), too slow to steer anything
    # within a CPU budget, so it gets its own, larger rate.
    groups: dict[str, list] = {"decay": [], "rest": [], "alignment": []}
    for n, p in model.named_parameters():
        key = "alignment" if n.startswith("proximity.") else "decay" if p.dim() >= 2 and "embeddings" not in n else "rest"
        groups[key].append(p)
    opt = torch.optim.AdamW(
        [
            {"params": groups["decay"], "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
            {"params": groups["rest"], "weight_decay": 0.0, "lr_scale": 1.0},
            {"params": groups["alignment"], "weight_decay": 0.0, "lr_scale": cfg.alignment_lr_multiplier},
        ],
        lr=cfg.lr, betas=(0.9, 0.98),
    )
    rng = np.random.default_rng(cfg.seed)
    order: list[int] = []
    result = TrainResult(steps=0, seconds=0.0, examples=0)
    bar = _progress_bar(cfg, disable=None if progress else True)  # None: off when not a terminal
    start = time.perf_counter()
    while result.steps < cfg.max_steps:
        elapsed = time.perf_counter() - start
        if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
            break
        if len(order) < cfg.batch_size:
            order.extend(rng.permutation(len(links)).tolist())
        batch = [links[i] for i in order[: cfg.batch_size]]
        del order[: cfg.batch_size]

        prog = result.steps / cfg.max_steps
        if cfg.time_budget_s:
            prog = max(prog, elapsed / cfg.time_budget_s)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * g["lr_scale"] * _lr_factor(prog, result.steps, cfg.warmup_steps)

        hidden = [[(l.member_id, l.job_id)] for l in batch]
        prompts = [builder.prompt(graph, l.member_id, h) for l, h in zip(batch, hidden)]
        prompts += [builder.prompt(graph, l.job_id, h) for l, h in zip(batch, hidden)]
        z = model(**builder.collate(prompts, device)).embeddings  # both sides in one pass
        zm, zj = z[: len(batch)], z[len(batch) :]
        loss = info_nce(zm, zj, [l.member_id for l in batch], [l.job_id for l in batch], model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

        result.steps += 1
        result.examples += len(batch)
        result.losses.append(loss.item())
        bar.update(1)
        if result.steps % 10 == 0 or result.steps == 1:
            bar.set_postfix(loss=f"{result.mean_loss(last=10):.3f}", T=f"{1 / model.logit_scale.exp().item():.3f}")
    bar.close()
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def _progress_bar(cfg: TrainConfig, disable: bool):
    from tqdm.auto import tqdm

    desc = "encoder" if cfg.time_budget_s is None else f"encoder (≤{cfg.time_budget_s:.0f}s)"
    return tqdm(total=cfg.max_steps, desc=desc, unit="step", disable=disable, leave=False)


# ---- embedding and retrieval metrics -----------------------------------------------------


@torch.no_grad()
def embed_nodes(
    model: PLM4JobEncoder, builder: PromptBuilder, graph: HeteroGraph, node_ids: Sequence[str],
    *, batch_size: int = 256, progress: bool = False,
) -> np.ndarray:
    """(n, embedding_dim) float32 unit vectors for `node_ids`, each with its ego graph."""
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(node_ids), model.config.embedding_dim), dtype=np.float32)
    starts = range(0, len(node_ids), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="embedding", unit="batch", leave=False)
    for i in starts:
        chunk = node_ids[i : i + batch_size]
        batch = builder.collate([builder.prompt(graph, n) for n in chunk], device)
        out[i : i + len(chunk)] = model(**batch).embeddings.float().cpu().numpy()
    return out


def hits_at_k(
    member_vecs: np.ndarray,
    member_ids: Sequence[str],
    job_vecs: np.ndarray,
    job_ids: Sequence[str],
    targets: Sequence[tuple[str, str]],
    *,
    k: int = 100,
    seen: dict[str, set[str]] | None = None,
) -> np.ndarray:
    """For each held-out (member, job) pair: is the job in the member's top-k by dot product?

    `seen` holds jobs each member already interacted with before the split; they are
    removed from the ranking, as a live recommender would not show them again.
    """
    if not len(targets):
        raise ValueError("no held-out pairs to measure recall on")
    m_row = {m: i for i, m in enumerate(member_ids)}
    j_col = {j: i for i, j in enumerate(job_ids)}
    for m, j in targets:
        if m not in m_row or j not in j_col:
            raise KeyError(f"held-out pair ({m!r}, {j!r}) not among embedded members/candidate jobs")
    members = sorted({m for m, _ in targets})
    wanted: dict[str, set[str]] = {}
    for m, j in targets:
        wanted.setdefault(m, set()).add(j)
    top_of: dict[str, set[str]] = {}
    for s in range(0, len(members), 512):
        chunk = members[s : s + 512]
        scores = member_vecs[[m_row[m] for m in chunk]] @ job_vecs.T
        for r, m in enumerate(chunk):
            for j in (seen or {}).get(m, ()):
                if j in j_col and j not in wanted[m]:
                    scores[r, j_col[j]] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        for r, m in enumerate(chunk):
            top_of[m] = {job_ids[c] for c in top[r]}
    return np.array([j in top_of[m] for m, j in targets], dtype=bool)


def recall_at_k(*args, **kwargs) -> float:
    """Share of held-out (member, job) pairs whose job is in the member's top-k; see hits_at_k."""
    return float(hits_at_k(*args, **kwargs).mean())


# ---- checkpoints -------------------------------------------------------------------------

SPEC_FILE = "prompt_spec.json"
SUMMARY_FILE = "training_summary.json"


def save_checkpoint(out_dir: str | Path, model: PLM4JobEncoder, tokenizer, spec: PromptSpec, summary: dict) -> Path:
    """Model (safetensors) + tokenizer + prompt spec + a model card with data, task, metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2))
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    (out / "README.md").write_text(model_card(model.config, spec, summary))
    return out


def load_checkpoint(path: str | Path, device: str = "auto"):
    """-> (model, PromptBuilder) ready to embed; the builder carries the saved tokenizer and spec."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no encoder checkpoint at {path} (config.json missing)")
    model = PLM4JobEncoder.from_pretrained(path).to(resolve_device(device)).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    spec = PromptSpec.from_dict(json.loads((path / SPEC_FILE).read_text()))
    return model, PromptBuilder(tokenizer, spec)


def model_card(config: EncoderConfig, spec: PromptSpec, summary: dict) -> str:
    metrics = summary.get("metrics", {})
    data = summary.get("data", {})
    train = summary.get("training", {})
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    data_rows = "\n".join(f"- {k}: {v}" for k, v in data.items())
    n_params = summary.get("parameters", "?")
    return f"""---
library_name: transformers
tags: [plm4job, ego-graph, link-prediction, job-matching]
---
# PLM4Job ego-graph encoder (hirestream)

A {config.num_layers}-layer, {config.hidden_size}-wide transformer encoder ({n_params} parameters) that
embeds a member or a job *with its graph neighbourhood*: the node's text followed by its
neighbours' texts (jobs applied to or hired into, companies, co-applicants), nearest first.
Graph signals: entity-type embeddings = {config.use_type_embeddings}, hop-distance
embeddings = {config.use_position_embeddings}, proximity attention alignment = {config.use_attention_alignment}.

## Task
Link prediction: member-job applications and hires, symmetric InfoNCE with in-batch
negatives; the predicted edge is hidden from both ego graphs. Output: unit-length
{config.embedding_dim}-d vectors, compared by dot product (cosine), for the job index's dense KNN.

## Data
Simulated marketplace (hirestream `streams/simulator`), no real member data.
{data_rows}

## Training
{chr(10).join(f"- {k}: {v}" for k, v in train.items())}

## Metrics (held-out later days)
| metric | value |
| --- | --- |
{rows}

## Prompt
{json.dumps(asdict(spec))}; tokenizer: WordPiece (vocab {config.vocab_size}) trained on the
simulator's node texts, saved here.

## Use
```python
from models.encoder_training import load_checkpoint
from models.ego_embedder import EgoGraphEmbedder
embedder = EgoGraphEmbedder.from_pretrained("<this folder>", graph)
job_vecs = embedder.embed_jobs(jobs)          # (n, {config.embedding_dim}) float32
member_vecs = embedder.embed_members(members)
```

## Limits
Trained on synthetic data only; cold members (no interactions) are embedded from their
profile text alone; the vectors carry no calibrated probabilities.
"""
