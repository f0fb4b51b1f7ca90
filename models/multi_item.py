"""Multi-item, multi-task scoring: one member prefix, many jobs, every task, one pass.

A ranking request scores one member against K jobs, and 360Brew asks several
questions of each (click? apply? ...). The member prefix is most of every prompt, so
it is encoded once, and each job's body once, followed by one short marker per task:

    [ prefix | body_1 m_1a m_1b .. | body_2 m_2a m_2b .. | ... ]

with a block attention mask: prefix tokens are causal among themselves; body k sees
the prefix and itself (causally); marker (k, t) sees the prefix, body k and itself,
never another job or another task's marker. Position ids restart where each block
would start alone (a body at len(prefix), its markers at len(prefix) + len(body)),
so marker (k, t) sees exactly what the one-task prompt `prefix + body_k + m_t` sees,
and its Yes/No is read at its own last token.

Two paths share that idea:
  * `score_multi_item`: the packed sequence with a 4D mask (also what training uses);
  * `score_with_prefix_cache`: the prefix runs once, its KV cache is expanded to K
    rows, and the K job blocks run as one padded batch (fastest on CPU per NOTES).

Masks are passed as additive float tensors (0 = attend, dtype-min = blocked): sdpa
takes them, and eager attention silently mis-scores with a boolean mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

Ids = Sequence[int]


def yes_no_logits(model, hidden: torch.Tensor, yes_id: int, no_id: int,
                  head: torch.Tensor | None = None) -> torch.Tensor:
    """(..., d) final hidden states -> (..., 2) logits of [" Yes", " No"].

    Only two rows of the output embedding are applied, and only at answer positions:
    the full 49k-way lm_head is most of a small model's cost and none of its answer.
    `head` replaces those rows while training them (see `models.ranker_training`).
    """
    lm_head = model.get_output_embeddings()
    rows = lm_head.weight[[yes_id, no_id]] if head is None else head
    out = hidden @ rows.T.to(hidden.dtype)
    if getattr(lm_head, "bias", None) is not None:
        out = out + lm_head.bias[[yes_id, no_id]]
    return out


def candidate_block(body_len: int, marker_lens: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One job's block: (S, S) bool mask within it, (S,) positions after the prefix,
    and the offsets of its answers (each marker's last token)."""
    S = body_len + sum(marker_lens)
    allowed = torch.zeros((S, S), dtype=torch.bool)
    positions = torch.empty(S, dtype=torch.long)
    allowed[:body_len, :body_len] = torch.tril(torch.ones(body_len, body_len, dtype=torch.bool))
    positions[:body_len] = torch.arange(body_len)
    answers, start = [], body_len
    for n in marker_lens:
        end = start + n
        allowed[start:end, :body_len] = True
        allowed[start:end, start:end] = torch.tril(torch.ones(n, n, dtype=torch.bool))
        positions[start:end] = torch.arange(body_len, body_len + n)
        answers.append(end - 1)
        start = end
    return allowed, positions, answers


@dataclass
class PackedRows:
    """A batch of packed rows, ready for the model."""

    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    allowed: torch.Tensor  # (B, L, L) bool: query i may attend key j
    answer_index: list[tuple[int, int]]  # (row, position) of every answer: job-major, then task

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, L, L) float mask: 0 where allowed, the dtype's min elsewhere."""
        mask = torch.zeros(self.allowed.shape, dtype=dtype)
        mask.masked_fill_(~self.allowed, torch.finfo(dtype).min)
        return mask[:, None]

    def to(self, device) -> "PackedRows":
        return PackedRows(self.input_ids.to(device), self.position_ids.to(device),
                          self.allowed.to(device), self.answer_index)


def pack_rows(rows: Sequence[tuple[Ids, Sequence[Ids], Sequence[Ids]]], pad_id: int = 0) -> PackedRows:
    """Pack rows of (prefix ids, [job body ids, ...], [task marker ids, ...]) into one
    right-padded batch; every body of a row is asked every marker of that row."""
    lengths = [len(p) + sum(len(b) for b in bodies) + len(bodies) * sum(len(m) for m in markers)
               for p, bodies, markers in rows]
    if not rows or min(lengths) == 0:
        raise ValueError(f"cannot pack empty rows (lengths {lengths})")
    for r, (_, bodies, markers) in enumerate(rows):
        if not markers or any(len(m) == 0 for m in markers) or any(len(b) == 0 for b in bodies):
            raise ValueError(f"row {r}: every job needs a body and every task a non-empty marker")
    B, L = len(rows), max(lengths)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    position_ids = torch.zeros((B, L), dtype=torch.long)
    allowed = torch.zeros((B, L, L), dtype=torch.bool)
    answers: list[tuple[int, int]] = []
    for r, (prefix, bodies, markers) in enumerate(rows):
        P = len(prefix)
        input_ids[r, :P] = torch.as_tensor(prefix, dtype=torch.long)
        position_ids[r, :P] = torch.arange(P)
        allowed[r, :P, :P] = torch.tril(torch.ones(P, P, dtype=torch.bool))
        marker_ids = [t for m in markers for t in m]
        start = P
        for body in bodies:
            block, positions, offsets = candidate_block(len(body), [len(m) for m in markers])
            end = start + len(block)
            input_ids[r, start:end] = torch.as_tensor(list(body) + marker_ids, dtype=torch.long)
            position_ids[r, start:end] = P + positions
            allowed[r, start:end, :P] = True
            allowed[r, start:end, start:end] = block
            answers.extend((r, start + o) for o in offsets)
            start = end
        # Padding attends only to itself: a fully blocked row would give NaN, and a NaN
        # anywhere in a layer's values poisons every query that multiplies it by 0.
        pad = torch.arange(start, L)
        allowed[r, pad, pad] = True
        position_ids[r, start:] = P
    return PackedRows(input_ids, position_ids, allowed, answers)


# ---- the forward pass in pieces (training caches the frozen lower blocks' output) ----------


def embed(model, packed: PackedRows) -> torch.Tensor:
    return model.model.embed_tokens(packed.input_ids.to(model.device))


def run_blocks(model, hidden: torch.Tensor, packed: PackedRows, layers) -> torch.Tensor:
    """Hidden states through `layers` (a slice of the decoder) under the packed mask."""
    mask = packed.additive_mask(hidden.dtype).to(hidden.device)
    positions = packed.position_ids.to(hidden.device)
    rotary = model.model.rotary_emb(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions,
                       past_key_values=None, use_cache=False)
    return hidden


def answer_hidden(model, hidden: torch.Tensor, packed: PackedRows) -> torch.Tensor:
    """(N, d) final-normed hidden states at every answer position, in packing order."""
    rows = torch.tensor([r for r, _ in packed.answer_index], device=hidden.device)
    cols = torch.tensor([c for _, c in packed.answer_index], device=hidden.device)
    return model.model.norm(hidden[rows, cols])


def answer_logits(model, packed: PackedRows, yes_id: int, no_id: int) -> torch.Tensor:
    """(N, 2) Yes/No logits at every answer position, in packing order."""
    hidden = run_blocks(model, embed(model, packed), packed, model.model.layers)
    return yes_no_logits(model, answer_hidden(model, hidden, packed), yes_id, no_id)


# ---- scoring ----------------------------------------------------------------------------------


def score_multi_item(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                     yes_id: int, no_id: int, max_jobs_per_pass: int = 64) -> torch.Tensor:
    """(K, T) Yes/No logit pairs -> (K, T, 2) for K jobs and T task markers after one prefix."""
    out = []
    for start in range(0, len(bodies), max_jobs_per_pass):
        packed = pack_rows([(prefix_ids, bodies[start:start + max_jobs_per_pass], markers)])
        out.append(answer_logits(model, packed, yes_id, no_id))
    return torch.cat(out).view(len(bodies), len(markers), 2)


def score_one_by_one(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                     yes_id: int, no_id: int) -> torch.Tensor:
    """The reference: each one-task prompt alone, as a plain causal LM reads it."""
    out = []
    for body in bodies:
        for marker in markers:
            ids = torch.tensor([list(prefix_ids) + list(body) + list(marker)], device=model.device)
            hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
            out.append(yes_no_logits(model, hidden[0, -1], yes_id, no_id))
    return torch.stack(out).view(len(bodies), len(markers), 2)


def score_with_prefix_cache(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                            yes_id: int, no_id: int, batch: int = 64) -> torch.Tensor:
    """Run the prefix once, then all job blocks as one padded batch over its KV cache."""
    from transformers import DynamicCache

    device, dtype = model.device, model.dtype
    P = len(prefix_ids)
    if P == 0:
        return score_one_by_one(model, prefix_ids, bodies, markers, yes_id, no_id)
    cache = model.model(input_ids=torch.tensor([list(prefix_ids)], device=device), use_cache=True).past_key_values
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    marker_ids = [t for m in markers for t in m]
    marker_lens = [len(m) for m in markers]

    out = []
    for start in range(0, len(bodies), batch):
        chunk = bodies[start:start + batch]
        K = len(chunk)
        S = max(len(b) for b in chunk) + len(marker_ids)
        ids = torch.zeros((K, S), dtype=torch.long)
        positions = torch.full((K, S), P, dtype=torch.long)
        allowed = torch.zeros((K, S, P + S), dtype=torch.bool)
        allowed[:, :, :P] = True
        answers = []
        for k, body in enumerate(chunk):
            block, pos, offsets = candidate_block(len(body), marker_lens)
            n = len(block)
            ids[k, :n] = torch.as_tensor(list(body) + marker_ids, dtype=torch.long)
            positions[k, :n] = P + pos
            allowed[k, :n, P:P + n] = block
            allowed[k, n:, P + n:] = torch.eye(S - n, dtype=torch.bool)  # padding: itself only
            answers.extend((k, o) for o in offsets)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        # A fresh cache per batch: `update` appends the blocks' keys in place, so the
        # prefix's cache cannot be shared as is.
        seg_cache = DynamicCache(ddp_cache_data=[(k.expand(K, -1, -1, -1), v.expand(K, -1, -1, -1))
                                                 for k, v in layers])
        hidden = model.model(
            input_ids=ids.to(device), attention_mask=mask[:, None].to(device),
            position_ids=positions.to(device), past_key_values=seg_cache, use_cache=True,
        ).last_hidden_state
        rows = torch.tensor([k for k, _ in answers], device=device)
        cols = torch.tensor([o for _, o in answers], device=device)
        out.append(yes_no_logits(model, hidden[rows, cols], yes_id, no_id))
    return torch.cat(out).view(len(bodies), len(markers), 2)
