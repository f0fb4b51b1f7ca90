"""Structured pruning of a Llama-family ranker: real, smaller dense shapes, no masks.

The small-language-model paper's students are pruned teachers: whole MLP neurons,
attention heads (in key/value groups, as grouped-query attention shares them) and
decoder blocks are removed, and the result is re-distilled from the teacher. Which
ones go is decided by how much each matters on calibration prompts (the ranker's own packed prompts), in the spirit of Minitron's
activation-based importance:

  * MLP neuron j of a block: mean |silu(gate_j) * up_j| over calibration tokens, the
    size of what it feeds into `down_proj`;
  * query head h: mean L2 norm of its output (its slice of `o_proj`'s input); a
    key/value group scores the sum of its query heads;
  * block: how far the final (normed) hidden states move, relative to their size,
    when that block alone is skipped (drop-one, as Minitron ranks depth). ShortGPT's
    block influence (1 - cos(h_in, h_out)) was tried first: dropping 2 of 8 blocks
    by it moved the answers' hidden states by 0.53 of their size, by drop-one 0.41
    (tests/test_pruning.py's prompts): a block that turns the stream little can still
    be one the later blocks depend on.

Hidden channels are not pruned: keeping the channels with the largest mean |RMSNorm
output| (480 of 576) moved the answers' log-odds about three times as much as the
median random choice did, so that criterion was wrong here, and no other was tried.

Every block keeps the same number of neurons and heads (each block its own
choice of which), so the result is a plain Llama config that `transformers` and vLLM
load as they are. Pure tensors: no Kafka, no streams.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from models.multi_item import PackedRows, embed, row_length, run_blocks

Row = tuple[Sequence[int], Sequence[Sequence[int]], Sequence[Sequence[int]]]  # prefix, bodies, markers


@dataclass
class PruneShape:
    """What to keep: per block (neurons, KV groups, query heads per group), and
    blocks. None keeps a dimension whole."""

    intermediate_size: int | None = None
    kv_groups: int | None = None
    heads_per_group: int | None = None
    layers: int | None = None

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Importance:
    """Calibration statistics, one tensor per block where it is per block."""

    neurons: list[torch.Tensor]  # (intermediate,) per block
    heads: list[torch.Tensor]  # (query heads,) per block
    blocks: torch.Tensor  # (layers,)
    tokens: int


def shape_of(config) -> dict:
    """The shape fields pruning changes, as a config has them."""
    return {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
            "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
            "num_hidden_layers": config.num_hidden_layers, "head_dim": _head_dim(config)}


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def valid_tokens(rows: Sequence[Row], packed: PackedRows) -> torch.Tensor:
    """(B, L) bool: the positions that hold a row's tokens (not padding)."""
    mask = torch.zeros(packed.input_ids.shape, dtype=torch.bool)
    for r, row in enumerate(rows):
        mask[r, :row_length(*row)] = True
    return mask


@torch.no_grad()
def measure_importance(model, batches: Iterable[Sequence[Row]], pad_id: int = 0, blocks: bool = True,
                       body_position: int | None = None) -> Importance:
    """Run the calibration rows (packed as training and scoring pack them): one pass
    per batch gathers the neurons' and heads' statistics, then one pass per
    skipped block measures the blocks (skipped when `blocks` is False: their scores
    are then all zero, for a cut that keeps every block)."""
    from models.multi_item import pack_rows

    layers = model.model.layers
    cfg = model.config
    n_heads, hd = cfg.num_attention_heads, _head_dim(cfg)
    neurons = [torch.zeros(cfg.intermediate_size) for _ in layers]
    heads = [torch.zeros(n_heads) for _ in layers]
    influence = torch.zeros(len(layers))  # drop-one movement of the output, summed over tokens
    state = {"valid": None, "tokens": 0, "record": True}

    def on_tokens(x: torch.Tensor) -> torch.Tensor:
        return x[state["valid"]].float()  # (tokens, features)

    def final(packed: PackedRows, skip: int | None = None) -> torch.Tensor:
        kept = [layer for j, layer in enumerate(layers) if j != skip]
        return on_tokens(model.model.norm(run_blocks(model, embed(model, packed), packed, kept)))

    # Hooks only read: each returns None, or torch would put its value in the
    # module's input or output.
    def add_neurons(i, args):
        if state["record"]:
            neurons[i].add_(on_tokens(args[0]).abs().sum(0).cpu())

    def add_heads(i, args):
        if state["record"]:
            heads[i].add_(on_tokens(args[0]).view(-1, n_heads, hd).norm(dim=-1).sum(0).cpu())

    hooks = []
    for i, layer in enumerate(layers):
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(lambda m, args, i=i: add_neurons(i, args)))
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, args, i=i: add_heads(i, args)))
    try:
        for rows in batches:
            packed = pack_rows(rows, pad_id=pad_id, body_position=body_position)
            state["valid"] = valid_tokens(rows, packed).to(model.device)
            state["tokens"] += int(state["valid"].sum())
            state["record"] = True
            whole = final(packed)
            state["record"] = False
            for j in range(len(layers) if blocks else 0):
                moved = (final(packed, skip=j) - whole).norm(dim=-1) / whole.norm(dim=-1).clamp_min(1e-6)
                influence[j] += moved.sum().cpu()
    finally:
        for h in hooks:
            h.remove()
    n = max(1, state["tokens"])
    return Importance([x / n for x in neurons], [x / n for x in heads], influence / n, state["tokens"])


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in their original order (keeps rotary pairs
    and the surviving units' layout as they were)."""
    return torch.topk(scores, k).indices.sort().values


def _take(linear: nn.Linear, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> nn.Linear:
    w = linear.weight.data
    if out_idx is not None:
        w = w[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    bias = linear.bias
    new = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, dtype=w.dtype, device=w.device)
    new.weight.data.copy_(w)
    if bias is not None:
        new.bias.data.copy_(bias.data if out_idx is None else bias.data[out_idx])
    return new


@torch.no_grad()
def prune(model, importance: Importance, shape: PruneShape):
    """Cut `model` (a Llama-family causal LM) to `shape` in place, by `importance`."""
    cfg = model.config
    n_kv, n_heads, hd = cfg.num_key_value_heads, cfg.num_attention_heads, _head_dim(cfg)
    per_group = n_heads // n_kv
    keep_groups = shape.kv_groups or n_kv
    keep_per_group = shape.heads_per_group or per_group
    keep_neurons = shape.intermediate_size or cfg.intermediate_size
    keep_layers = shape.layers or cfg.num_hidden_layers
    for name, want, have in (("kv_groups", keep_groups, n_kv), ("heads_per_group", keep_per_group, per_group),
                             ("intermediate_size", keep_neurons, cfg.intermediate_size),
                             ("layers", keep_layers, cfg.num_hidden_layers)):
        if not 0 < want <= have:
            raise ValueError(f"{name} must be in 1..{have}, got {want}")

    blocks = _top(importance.blocks, keep_layers).tolist()
    kept_layers = []
    for new_idx, i in enumerate(blocks):
        layer = model.model.layers[i]
        attn, mlp = layer.self_attn, layer.mlp
        # heads: the strongest groups, then the strongest query heads inside each
        per_head = importance.heads[i].view(n_kv, per_group)
        groups = _top(per_head.sum(1), keep_groups)
        q_heads = torch.cat([g * per_group + _top(per_head[g], keep_per_group) for g in groups.tolist()])
        q_rows = (q_heads[:, None] * hd + torch.arange(hd)).flatten()
        kv_rows = (groups[:, None] * hd + torch.arange(hd)).flatten()
        neurons = _top(importance.neurons[i], keep_neurons)
        attn.q_proj = _take(attn.q_proj, out_idx=q_rows)
        attn.k_proj = _take(attn.k_proj, out_idx=kv_rows)
        attn.v_proj = _take(attn.v_proj, out_idx=kv_rows)
        attn.o_proj = _take(attn.o_proj, in_idx=q_rows)
        attn.num_key_value_groups = keep_per_group
        attn.head_dim = hd
        attn.layer_idx = new_idx  # the KV cache indexes blocks by position
        mlp.gate_proj = _take(mlp.gate_proj, out_idx=neurons)
        mlp.up_proj = _take(mlp.up_proj, out_idx=neurons)
        mlp.down_proj = _take(mlp.down_proj, in_idx=neurons)
        kept_layers.append(layer)
    model.model.layers = nn.ModuleList(kept_layers)
    cfg.num_hidden_layers = keep_layers
    cfg.num_key_value_heads = keep_groups
    cfg.num_attention_heads = keep_groups * keep_per_group
    cfg.head_dim = hd  # no longer hidden_size / heads
    cfg.intermediate_size = keep_neurons
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in blocks]
    return model


def n_block_parameters(model) -> int:
    """Parameters in the decoder blocks (what pruning shrinks besides the embeddings)."""
    return sum(p.numel() for p in model.model.layers.parameters())

