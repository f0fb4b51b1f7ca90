"""Multi-item scoring: one member prefix, many candidate jobs, one forward pass.

A ranking request scores one member against K jobs. The member prefix (instruction,
profile, history) is most of every prompt, so it is encoded once:

    [ prefix | seg_1 | seg_2 | ... | seg_K ]

with a block attention mask: prefix tokens are causal among themselves; segment k's
tokens see the whole prefix and the causal part of segment k, never another segment.
Each segment's position ids restart at len(prefix), so segment k sees exactly what
it would see alone after the prefix, and its answer is read at its own last token.

Two paths share that idea:
  * `score_multi_item`: the packed sequence with a 4D mask (also what training uses);
  * `score_with_prefix_cache`: the prefix runs once, its KV cache is expanded to K
    rows, and the K segments run as one padded batch (fastest on CPU per NOTES).

Masks are passed as additive float tensors (0 = attend, dtype-min = blocked): sdpa
takes them, and eager attention silently mis-scores with a boolean mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from models.ranker import yes_no_logits


@dataclass
class PackedRows:
    """A batch of packed rows, ready for the model."""

    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    allowed: torch.Tensor  # (B, L, L) bool: query i may attend key j
    answer_index: list[tuple[int, int]]  # (row, position) of each segment's answer, in order

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, L, L) float mask: 0 where allowed, the dtype's min elsewhere."""
        mask = torch.zeros(self.allowed.shape, dtype=dtype)
        mask.masked_fill_(~self.allowed, torch.finfo(dtype).min)
        return mask[:, None]

    def to(self, device) -> "PackedRows":
        return PackedRows(self.input_ids.to(device), self.position_ids.to(device),
                          self.allowed.to(device), self.answer_index)


def pack_rows(rows: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], pad_id: int = 0) -> PackedRows:
    """Pack rows of (prefix ids, [segment ids, ...]) into one right-padded batch."""
    lengths = [len(p) + sum(len(s) for s in segs) for p, segs in rows]
    if not rows or min(lengths) == 0:
        raise ValueError(f"cannot pack empty rows (lengths {lengths})")
    for r, (_, segs) in enumerate(rows):
        if any(len(s) == 0 for s in segs):
            raise ValueError(f"row {r} has an empty segment; every segment needs its answer token")
    B, L = len(rows), max(lengths)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    position_ids = torch.zeros((B, L), dtype=torch.long)
    allowed = torch.zeros((B, L, L), dtype=torch.bool)
    answers: list[tuple[int, int]] = []
    for r, (prefix, segs) in enumerate(rows):
        P = len(prefix)
        input_ids[r, :P] = torch.as_tensor(prefix, dtype=torch.long)
        position_ids[r, :P] = torch.arange(P)
        allowed[r, :P, :P] = torch.tril(torch.ones(P, P, dtype=torch.bool))
        start = P
        for seg in segs:
            S = len(seg)
            end = start + S
            input_ids[r, start:end] = torch.as_tensor(seg, dtype=torch.long)
            position_ids[r, start:end] = torch.arange(P, P + S)
            allowed[r, start:end, :P] = True
            allowed[r, start:end, start:end] = torch.tril(torch.ones(S, S, dtype=torch.bool))
            answers.append((r, end - 1))
            start = end
        # Padding attends only to itself: a fully blocked row would give NaN, and a NaN
        # anywhere in a layer's values poisons every query that multiplies it by 0.
        pad = torch.arange(start, L)
        allowed[r, pad, pad] = True
        position_ids[r, start:] = P
    return PackedRows(input_ids, position_ids, allowed, answers)


def hidden_states(model, packed: PackedRows) -> torch.Tensor:
    """Final-layer hidden states (B, L, d) of packed rows (the LM head is not applied)."""
    dtype = next(model.parameters()).dtype
    packed = packed.to(next(model.parameters()).device)
    out = model.model(
        input_ids=packed.input_ids,
        attention_mask=packed.additive_mask(dtype).to(packed.input_ids.device),
        position_ids=packed.position_ids,
        use_cache=False,
    )
    return out.last_hidden_state


def answer_logits(model, packed: PackedRows, yes_id: int, no_id: int) -> torch.Tensor:
    """(N, 2) Yes/No logits at every segment's answer position, in packing order."""
    hidden = hidden_states(model, packed)
    rows = torch.tensor([r for r, _ in packed.answer_index], device=hidden.device)
    cols = torch.tensor([c for _, c in packed.answer_index], device=hidden.device)
    return yes_no_logits(model, hidden[rows, cols], yes_id, no_id)


def score_multi_item(model, prefix_ids: Sequence[int], segment_ids: Sequence[Sequence[int]],
                     yes_id: int, no_id: int, max_segments_per_pass: int = 64) -> torch.Tensor:
    """(K, 2) Yes/No logits for K segments after one prefix, packed in one row per pass."""
    out = []
    for start in range(0, len(segment_ids), max_segments_per_pass):
        packed = pack_rows([(prefix_ids, segment_ids[start:start + max_segments_per_pass])])
        out.append(answer_logits(model, packed, yes_id, no_id))
    return torch.cat(out)


def score_one_by_one(model, prefix_ids: Sequence[int], segment_ids: Sequence[Sequence[int]],
                     yes_id: int, no_id: int) -> torch.Tensor:
    """The reference: each prompt alone, as a plain causal LM reads it."""
    device = next(model.parameters()).device
    out = []
    for seg in segment_ids:
        ids = torch.tensor([list(prefix_ids) + list(seg)], device=device)
        hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
        out.append(yes_no_logits(model, hidden[0, -1], yes_id, no_id))
    return torch.stack(out)


def score_with_prefix_cache(model, prefix_ids: Sequence[int], segment_ids: Sequence[Sequence[int]],
                            yes_id: int, no_id: int, batch: int = 64) -> torch.Tensor:
    """Run the prefix once, then all segments as one padded batch over its KV cache."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    P = len(prefix_ids)
    if P == 0:
        return score_one_by_one(model, prefix_ids, segment_ids, yes_id, no_id)
    prefix = torch.tensor([list(prefix_ids)], device=device)
    cache = model.model(input_ids=prefix, use_cache=True).past_key_values
    layers = [(layer.keys, layer.values) for layer in cache.layers]

    out = []
    for start in range(0, len(segment_ids), batch):
        segs = segment_ids[start:start + batch]
        K, S = len(segs), max(len(s) for s in segs)
        ids = torch.zeros((K, S), dtype=torch.long)
        allowed = torch.zeros((K, S, P + S), dtype=torch.bool)
        allowed[:, :, :P] = True
        for k, seg in enumerate(segs):
            n = len(seg)
            ids[k, :n] = torch.as_tensor(seg, dtype=torch.long)
            allowed[k, :n, P:P + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
            allowed[k, n:, P + n:] = torch.eye(S - n, dtype=torch.bool)  # padding: itself only
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        positions = (P + torch.arange(S)).expand(K, S)
        # A fresh cache per batch: `update` appends the segments' keys in place, so the
        # prefix's cache cannot be shared as is.
        seg_cache = DynamicCache(ddp_cache_data=[(k.expand(K, -1, -1, -1), v.expand(K, -1, -1, -1))
                                                 for k, v in layers])
        hidden = model.model(
            input_ids=ids.to(device),
            attention_mask=mask[:, None].to(device),
            position_ids=positions.to(device),
            past_key_values=seg_cache,
            use_cache=True,
        ).last_hidden_state
        last = torch.tensor([len(s) - 1 for s in segs], device=device)
        out.append(yes_no_logits(model, hidden[torch.arange(K, device=device), last], yes_id, no_id))
    return torch.cat(out)
