"""The trained blocks' forward pass, by hand, for training: only what the loss reads.

Training reads one hidden state per answer (a job's task marker), so:

* **The last block runs at the answers only.** Its keys and values are needed at every
  position (the answers attend to them), its queries, attention output and MLP only
  at the answers: about three in eighty tokens of a job, none of the prefix. Exact.
* **The member prefix can be read without backpropagation** (`prefix_backprop=False`).
  The prefix is most of a row's tokens (a member-day's context, ~320 tokens, against
  ~2-3 jobs of ~80), and training pays three passes (forward, two backward) for every
  token it differentiates. Without it, the prefix runs the trained blocks once without
  a graph, and the jobs read its states as constants, except where it is cheap to
  keep them learning: in every block the prefix's keys and values are recomputed from
  those constant inputs with gradient, so each block still learns *which* member
  tokens its jobs attend to; what goes untrained is how the prefix tokens mix among
  themselves above the frozen blocks. The forward pass, and so the scores, are the
  same either way; only the gradient is truncated.

Layout: a row of a `PackedRows` batch is [prefix | jobs and markers | padding]. The
prefix and the rest are gathered into two tensors (each row's own prefix length): a
constant prefix runs plain causal attention alone (the fused kernel skips what causality
blocks), the rest attends to its row's prefix and itself under the packed mask. Llama blocks: pre-norm
attention with rotary positions and grouped key/value heads, then the MLP, as
`models.multi_item.blocks_over_shared_prefix` runs them for scoring.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import rotate_half

from models.multi_item import PackedRows


@dataclass
class SplitRows:
    """A packed batch cut into its prefixes and the rest (jobs, markers, padding)."""

    prefix_at: torch.Tensor  # (B, P) indices into the packed rows (padding repeats index 0)
    rest_at: torch.Tensor  # (B, J) indices into the packed rows
    rest_allowed: torch.Tensor  # (B, J, P + J) bool: over [its prefix | the rest]
    answers: torch.Tensor  # (B, A) offsets in the rest (a row with fewer repeats its last)
    n_answers: list[int]  # per row: how many of `answers` are real


def split_prefix(packed: PackedRows, prefix_lengths: Sequence[int]) -> SplitRows:
    """Cut every packed row after its prefix (`prefix_lengths[r]` ids), which must be
    plain causal text (the prefix pass runs unmasked causal attention). Padding in the
    rest attends only to itself (a fully blocked query gives NaN)."""
    B, L = packed.input_ids.shape
    lengths = list(prefix_lengths)
    if len(lengths) != B or min(lengths) < 1:
        raise ValueError(f"need a non-empty prefix per row: {B} rows, prefix lengths {lengths}")
    P, J = max(lengths), L - min(lengths)
    prefix_at = torch.zeros((B, P), dtype=torch.long)
    rest_at = torch.zeros((B, J), dtype=torch.long)
    rest_allowed = torch.zeros((B, J, P + J), dtype=torch.bool)
    rest_allowed[:, :, P:] = torch.eye(J, dtype=torch.bool)
    causal = torch.ones((P, P), dtype=torch.bool).tril()
    per_row: list[list[int]] = [[] for _ in range(B)]
    for r, c in packed.answer_index:
        per_row[r].append(c - lengths[r])
    for r, p in enumerate(lengths):
        if min(per_row[r], default=0) < 0:
            raise ValueError(f"row {r}: an answer lies inside its {p}-id prefix")
        if not torch.equal(packed.allowed[r, :p, :p], causal[:p, :p]):
            raise ValueError(f"row {r}: its first {p} ids are not plain causal text")
        prefix_at[r, :p] = torch.arange(p)
        n = L - p
        rest_at[r, :n] = torch.arange(p, L)
        rest_at[r, n:] = L - 1
        rest_allowed[r, :n, :p] = packed.allowed[r, p:, :p]
        rest_allowed[r, :n, P:P + n] = packed.allowed[r, p:, p:]
    A = max(map(len, per_row))
    answers = torch.tensor([a + a[-1:] * (A - len(a)) if a else [0] * A for a in per_row], dtype=torch.long)
    return SplitRows(prefix_at, rest_at, rest_allowed, answers, [len(a) for a in per_row])


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions on (B, heads, S, head dim), cos/sin (B, S, head dim)."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def _heads(proj, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    B, S, _ = x.shape
    return proj(x).view(B, S, -1, head_dim).transpose(1, 2)


def _gather(x: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """x (B, L, ...) at indices (B, S) -> (B, S, ...)."""
    return x.gather(1, at.view(*at.shape, *([1] * (x.dim() - 2))).expand(*at.shape, *x.shape[2:]))


def answer_states_through(model, layers, hidden: torch.Tensor, packed: PackedRows,
                          prefix_lengths: Sequence[int], prefix_backprop: bool = True) -> torch.Tensor:
    """(N, d) final-normed hidden states at every answer of `packed`, in packing order,
    after `layers` (the trained blocks) from `hidden` (B, L, d: the frozen blocks' output).

    With `prefix_backprop` the prefix is part of the differentiated pass (its split is
    only the bookkeeping); without, see the module's docstring."""
    decoder = model.model
    device = hidden.device
    # With backprop through the prefix, the "prefix" is each row's first id alone (any
    # cut gives the same gradient then). Cut at the real prefix, the prefix would run
    # causal attention alone and the jobs over it, ~40 % less attention; but the
    # training step got slower, not faster (`bench/ranker_train_speed.py`, 2 cores,
    # 2026-12-06: 15.4 labels per CPU-second against 18.5, ratio 7.0x against 9.8x):
    # the library block and the hand-run keys and values do the prefix's work twice.
    split = split_prefix(packed, [1] * len(prefix_lengths) if prefix_backprop else prefix_lengths)
    positions = packed.position_ids.to(device)
    at_p, at_r = split.prefix_at.to(device), split.rest_at.to(device)
    x = _gather(hidden, at_r)
    cos, sin = decoder.rotary_emb(x, position_ids=positions.gather(1, at_r))
    x_prefix = _gather(hidden, at_p)
    cos_p, sin_p = decoder.rotary_emb(x_prefix, position_ids=positions.gather(1, at_p))
    # A prefix is plain causal text with its padding after it, so the prefix pass is
    # causal attention without a mask: the fused kernel skips the upper triangle, and
    # the padding's outputs are never read (the rest's mask blocks them as keys).
    prefix_inputs = []
    # Without backprop the prefix is a constant: every block's input from one pass
    # without a graph (the last block's input is all its keys and values need).
    with torch.set_grad_enabled(prefix_backprop and torch.is_grad_enabled()):
        h = x_prefix
        for layer in layers:
            prefix_inputs.append(h)
            if layer is not layers[-1]:
                h = layer(h, attention_mask=None, position_embeddings=(cos_p, sin_p),
                          position_ids=None, past_key_values=None, use_cache=False)
    allowed = split.rest_allowed.to(device)
    answers = split.answers.to(device)
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        hd = attn.head_dim
        normed = layer.input_layernorm(x)
        normed_prefix = layer.input_layernorm(prefix_inputs[i])
        keys = torch.cat([_rotate(_heads(attn.k_proj, normed_prefix, hd), cos_p, sin_p),
                          _rotate(_heads(attn.k_proj, normed, hd), cos, sin)], dim=2)
        values = torch.cat([_heads(attn.v_proj, normed_prefix, hd), _heads(attn.v_proj, normed, hd)], dim=2)
        mask = allowed
        if i == len(layers) - 1:  # the answers' queries alone: nothing reads the rest's output
            x, normed = _gather(x, answers), _gather(normed, answers)
            cos, sin = _gather(cos, answers), _gather(sin, answers)
            mask = _gather(allowed, answers)
        q = _rotate(_heads(attn.q_proj, normed, hd), cos, sin)
        out = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype), attn_mask=mask[:, None],
                                             scale=attn.scaling, enable_gqa=True)
        B, Q = x.shape[:2]
        x = x + attn.o_proj(out.transpose(1, 2).reshape(B, Q, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    x = decoder.norm(x)
    return torch.cat([x[r, :n] for r, n in enumerate(split.n_answers)])
