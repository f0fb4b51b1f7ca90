"""One PLM4Job experiment end to end: split -> tokenizer -> train -> recall -> checkpoint.

Shared by `hirestream train encoder` and `bench/encoder_ablation.py`, so the command
and the ablation table measure the same thing: recall@k of held-out applications and
hires when each held-out member's embedding retrieves from all open jobs by KNN.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from models.encoder import EncoderConfig, PLM4JobEncoder
from models.encoder_training import (
    PromptBuilder,
    PromptSpec,
    TrainConfig,
    TrainResult,
    embed_nodes,
    hits_at_k,
    recall_at_k,
    resolve_device,
    save_checkpoint,
    seed_everything,
    train_link_prediction,
    train_tokenizer,
)
from serving.graph_data import GraphSplit, marketplace_split

KS = (10, 50, 100)


@dataclass(frozen=True)
class DataConfig:
    """Enough members that 15 days give ~5k applies + hires to learn from (the simulator's
    apply rate is ~0.03 per member-day); fewer jobs than members so jobs gather applicants."""

    seed: int = 7
    n_members: int = 10_000
    n_companies: int = 150
    n_jobs: int = 3000
    days: int = 21
    train_days: int = 15
    similar_members: int = 3

    @classmethod
    def quick(cls, seed: int = 7) -> "DataConfig":
        return cls(seed=seed, n_members=3000, n_companies=60, n_jobs=1000, days=14, train_days=10)

    def split(self) -> GraphSplit:
        return marketplace_split(**asdict(self))


@dataclass(frozen=True)
class ModelShape:
    """Encoder sizes that fit a CPU budget of minutes; switches come per variant."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    embedding_dim: int = 128
    dropout: float = 0.0  # a few hundred steps see each link about once: nothing to regularize
    vocab_size: int = 8000


def build_tokenizer_and_builder(split: GraphSplit, shape: ModelShape, spec: PromptSpec):
    texts = [n.text for n in split.graph.nodes.values()]
    tokenizer = train_tokenizer(texts, vocab_size=shape.vocab_size)
    builder = PromptBuilder(tokenizer, spec)
    builder.warm(texts)
    return tokenizer, builder


def new_model(tokenizer, shape: ModelShape, spec: PromptSpec, **switches) -> PLM4JobEncoder:
    s = asdict(shape)
    s["vocab_size"] = len(tokenizer)
    config = EncoderConfig(
        **s, max_position_embeddings=spec.max_len, max_hop=spec.max_hop,
        pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id, **switches,
    )
    return PLM4JobEncoder(config)


def new_variant(tokenizer, shape: ModelShape, spec: PromptSpec, seed: int, **switches) -> PLM4JobEncoder:
    """A model whose shared weights equal every other variant's at the same seed.

    Switches change which modules exist, hence how much randomness construction draws;
    so the full model is drawn once under the seed and the variant copies its weights.
    """
    seed_everything(seed)
    full = new_model(tokenizer, shape, spec)
    model = new_model(tokenizer, shape, spec, **switches)
    model.load_state_dict(full.state_dict(), strict=False)
    return model


def evaluate(model: PLM4JobEncoder, builder: PromptBuilder, split: GraphSplit, ks=KS, progress=False):
    """-> (metrics, hits): recall@k overall and for members with / without training links,
    and the per-pair hit vector at the largest k (for paired comparisons)."""
    members = split.heldout_members
    zm = embed_nodes(model, builder, split.graph, members, progress=progress)
    zj = embed_nodes(model, builder, split.graph, split.candidate_jobs, progress=progress)
    metrics, hits = {}, None
    for k in ks:
        hits = hits_at_k(zm, members, zj, split.candidate_jobs, split.heldout, k=k, seen=split.seen)
        metrics[f"recall@{k}"] = float(hits.mean())
    warm = np.array([m in split.seen for m, _ in split.heldout])
    metrics[f"recall@{max(ks)}_warm"] = float(hits[warm].mean()) if warm.any() else float("nan")
    metrics[f"recall@{max(ks)}_cold"] = float(hits[~warm].mean()) if (~warm).any() else float("nan")
    return metrics, hits


def popularity_recall(split: GraphSplit, ks=KS) -> dict:
    """Reference: every member gets the jobs with the most training links."""
    counts: dict[str, int] = {}
    for l in split.train_links:
        counts[l.job_id] = counts.get(l.job_id, 0) + 1
    jobs = split.candidate_jobs
    pop = np.array([counts.get(j, 0) for j in jobs], np.float32)
    members = split.heldout_members
    # one shared "member" direction scores each job by its popularity (ties by order)
    zj = np.stack([pop, np.linspace(1e-3, 0, len(jobs), dtype=np.float32)], axis=1)
    zm = np.tile(np.array([[1.0, 1.0]], np.float32), (len(members), 1))
    return {
        f"recall@{k}": recall_at_k(zm, members, zj, jobs, split.heldout, k=k, seen=split.seen) for k in ks
    }


@dataclass
class RunOutcome:
    name: str
    metrics: dict
    train: TrainResult
    model: PLM4JobEncoder = field(repr=False)
    hits: np.ndarray = field(repr=False, default=None)  # per held-out pair, at the largest k
    params: int = 0
    eval_seconds: float = 0.0


def run_variant(
    name: str, split: GraphSplit, tokenizer, builder: PromptBuilder, shape: ModelShape,
    train_cfg: TrainConfig, *, progress: bool = True, **switches,
) -> RunOutcome:
    model = new_variant(tokenizer, shape, builder.spec, train_cfg.seed, **switches)
    result = train_link_prediction(model, builder, split.graph, split.train_links, train_cfg, progress=progress)
    t0 = time.perf_counter()
    metrics, hits = evaluate(model, builder, split, progress=progress)
    metrics["final_loss"] = result.mean_loss(last=20)
    return RunOutcome(name, metrics, result, model, hits, sum(p.numel() for p in model.parameters()),
                      time.perf_counter() - t0)


def train_encoder_on_simulator(
    *, data: DataConfig, shape: ModelShape, spec: PromptSpec, train_cfg: TrainConfig,
    out_dir: Path, switches: dict, progress: bool = True, log=print,
) -> tuple[Path, dict]:
    """The `hirestream train encoder` pipeline; returns the checkpoint folder and metrics."""
    t0 = time.perf_counter()
    log(f"simulating marketplace {asdict(data)} ...")
    split = data.split()
    log(f"split: {split.stats}")
    tokenizer, builder = build_tokenizer_and_builder(split, shape, spec)
    device = resolve_device(train_cfg.device)
    train_cfg = replace(train_cfg, device=str(device))
    log(f"training on {device} (tokenizer vocab {len(tokenizer)}) ...")
    outcome = run_variant("encoder", split, tokenizer, builder, shape, train_cfg, progress=progress, **switches)
    summary = {
        "parameters": outcome.params,
        "data": {**split.stats, "source": "streams.simulator.Marketplace", **asdict(data)},
        "training": {
            "task": "member-job link prediction (applies + hires), symmetric InfoNCE, in-batch negatives",
            "steps": outcome.train.steps, "examples": outcome.train.examples,
            "seconds": round(outcome.train.seconds, 1), "device": str(device),
            "first_loss": outcome.train.mean_loss(first=20), "final_loss": outcome.train.mean_loss(last=20),
            **{k: v for k, v in asdict(train_cfg).items() if k != "device"},
        },
        "metrics": {**outcome.metrics, "popularity_reference": popularity_recall(split)["recall@100"]},
        "switches": switches,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    path = save_checkpoint(out_dir, outcome.model, tokenizer, spec, summary)
    return path, summary
