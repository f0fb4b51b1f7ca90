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
  * `score_with_prefix_cache`: the prefix runs once, and the K job blocks run as
    padded batches that read its KV cache in place (`blocks_over_shared_prefix`).
    `score_rows_with_prefix_cache` does that for several members at once (the
    serving batcher's call): their prefixes in one padded pass, then each member's
    jobs over its own cache rows.

Two references without any sharing: `score_one_by_one` (each one-task prompt alone)
and `score_padded_prompts` (those prompts as padded batches). `label_probabilities`
reads arbitrary label tokens after `prefix + item` (SGLang's scoring API).

Masks are passed as additive float tensors (0 = attend, dtype-min = blocked): sdpa
takes them, and eager attention silently mis-scores with a boolean mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

Ids = Sequence[int]

# Segments per padded batch over their prefixes (`segments_over_prefixes`). On a CPU a
# smaller batch scores more candidates per CPU-second: 24 against 64, paired over the same
# requests, +18 % (SE 2.5) at the 360Brew-like shape and +15 % (SE 3.3) at today's
# (2026-12-07, a 2-core AMD EPYC, float32; 16 and 32 gained less): less padding, and
# a batch's activations stay in cache. A GPU keeps 64, unmeasured (no GPU lent).
SEGMENT_BATCH = {"cpu": 24, "cuda": 64}


def segment_batch(device: torch.device) -> int:
    """Segments per batch on `device` (`SEGMENT_BATCH`)."""
    return SEGMENT_BATCH.get(device.type, SEGMENT_BATCH["cuda"])


def yes_no_logits(model, hidden: torch.Tensor, yes_id: int, no_id: int,
                  head: torch.Tensor | None = None) -> torch.Tensor:
    """(..., d) final hidden states -> (..., 2) logits of [" Yes", " No"].

    Only two rows of the output embedding are applied, and only at answer positions:
    the full 49k-way lm_head is most of a small model's cost and none of its answer.
    `head` replaces those rows while training them (see `models.ranker_training`).
    """
    return label_logits(model, hidden, [yes_id, no_id], head)


def label_logits(model, hidden: torch.Tensor, token_ids: Sequence[int],
                 head: torch.Tensor | None = None) -> torch.Tensor:
    """(..., d) -> (..., L): the LM head's logits of `token_ids` only, in float32 whatever
    the model's dtype (the answer is a difference of two logits; bf16 rounds it)."""
    lm_head = model.get_output_embeddings()
    rows = lm_head.weight[list(token_ids)] if head is None else head
    out = hidden.float() @ rows.T.float()
    if getattr(lm_head, "bias", None) is not None:
        out = out + lm_head.bias[list(token_ids)]
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
        return additive_mask(self.allowed, dtype)[:, None]

    def to(self, device) -> "PackedRows":
        return PackedRows(self.input_ids.to(device), self.position_ids.to(device),
                          self.allowed.to(device), self.answer_index)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean may-attend mask as the float one attention adds: 0 where allowed, the
    dtype's min elsewhere (on `allowed`'s device)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


def row_length(prefix: Ids, bodies: Sequence[Ids], markers: Sequence[Ids]) -> int:
    """Tokens of one packed row: the prefix, then each body followed by every marker."""
    return len(prefix) + sum(len(b) for b in bodies) + len(bodies) * sum(len(m) for m in markers)


def pack_rows(rows: Sequence[tuple[Ids, Sequence[Ids], Sequence[Ids]]], pad_id: int = 0,
              body_position: int | None = None) -> PackedRows:
    """Pack rows of (prefix ids, [job body ids, ...], [task marker ids, ...]) into one
    right-padded batch; every body of a row is asked every marker of that row.

    `body_position` (a checkpoint's `jobs read alone` layout, `models.job_states`): each
    body sees only itself, at positions from `body_position` whatever the prefix's
    length, so its states do not depend on the member; only its markers see the prefix."""
    lengths = [row_length(p, bodies, markers) for p, bodies, markers in rows]
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
        if body_position is not None and body_position < P:
            raise ValueError(f"row {r}: a prefix of {P} ids runs past the bodies' position {body_position}")
        for body in bodies:
            block, positions, offsets = candidate_block(len(body), [len(m) for m in markers])
            end = start + len(block)
            input_ids[r, start:end] = torch.as_tensor(list(body) + marker_ids, dtype=torch.long)
            position_ids[r, start:end] = (P if body_position is None else body_position) + positions
            allowed[r, start + (0 if body_position is None else len(body)):end, :P] = True
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


def answer_states(model, packed: PackedRows) -> torch.Tensor:
    """(N, d) final-normed hidden states at every answer position after every block:
    all the answer head reads."""
    return answer_hidden(model, run_blocks(model, embed(model, packed), packed, model.model.layers), packed)


def answer_logits(model, packed: PackedRows, yes_id: int, no_id: int) -> torch.Tensor:
    """(N, 2) Yes/No logits at every answer position, in packing order."""
    return yes_no_logits(model, answer_states(model, packed), yes_id, no_id)


# ---- scoring ----------------------------------------------------------------------------------


def score_multi_item(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                     yes_id: int, no_id: int, max_jobs_per_pass: int = 64,
                     body_position: int | None = None) -> torch.Tensor:
    """(K, T) Yes/No logit pairs -> (K, T, 2) for K jobs and T task markers after one prefix."""
    out = []
    for start in range(0, len(bodies), max_jobs_per_pass):
        packed = pack_rows([(prefix_ids, bodies[start:start + max_jobs_per_pass], markers)],
                           body_position=body_position)
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


def score_padded_prompts(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                         yes_id: int, no_id: int, batch: int = 16) -> torch.Tensor:
    """Every one-task prompt `prefix + body + marker` as its own row of a right-padded
    batch: batching without any sharing, the reference the sharing paths are measured
    against (`bench/scoring.py`)."""
    prompts = [list(prefix_ids) + list(body) + list(marker) for body in bodies for marker in markers]
    hidden = last_hidden_of_prompts(model, prompts, batch)
    return yes_no_logits(model, hidden, yes_id, no_id).view(len(bodies), len(markers), 2)


def last_hidden_of_prompts(model, prompts: Sequence[Ids], batch: int = 16) -> torch.Tensor:
    """(N, d) final hidden state at each prompt's last token; prompts run as right-padded
    batches (a causal row never sees the padding after it)."""
    device = model.device
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        L = max(len(p) for p in chunk)
        ids = torch.zeros((len(chunk), L), dtype=torch.long)
        attention = torch.zeros((len(chunk), L), dtype=torch.long)
        for r, p in enumerate(chunk):
            ids[r, :len(p)] = torch.as_tensor(p, dtype=torch.long)
            attention[r, :len(p)] = 1
        hidden = model.model(input_ids=ids.to(device), attention_mask=attention.to(device),
                             use_cache=False).last_hidden_state
        last = torch.tensor([len(p) - 1 for p in chunk], device=device)
        out.append(hidden[torch.arange(len(chunk), device=device), last])
    return torch.cat(out)


# ---- segments over cached prefixes --------------------------------------------------------------


@dataclass
class Segment:
    """One block of tokens after one of several prefixes: which prefix it follows, its
    ids, who may see whom inside it, positions counted from the prefix's end, and the
    offsets whose hidden states are wanted."""

    prefix: int
    ids: list[int]
    allowed: torch.Tensor  # (S, S) bool
    positions: torch.Tensor  # (S,) long
    answers: list[int]


def job_segments(prefix: int, bodies: Sequence[Ids], markers: Sequence[Ids]) -> list[Segment]:
    """A job block per body (body, then every task marker), as `candidate_block` lays it out."""
    marker_ids = [t for m in markers for t in m]
    marker_lens = [len(m) for m in markers]
    out = []
    for body in bodies:
        allowed, positions, answers = candidate_block(len(body), marker_lens)
        out.append(Segment(prefix, list(body) + marker_ids, allowed, positions, answers))
    return out


def causal_segment(prefix: int, ids: Ids) -> Segment:
    """Plain text after a prefix, read at its last token (what `prefix + text` predicts next)."""
    n = len(ids)
    return Segment(prefix, list(ids), torch.tril(torch.ones(n, n, dtype=torch.bool)), torch.arange(n), [n - 1])


def prefix_caches(model, prefixes: Sequence[Ids], first_position: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each decoder layer's (keys, values) for the prefixes, (B, heads, P_max, d): one
    prefix runs alone (no padding, bit for bit the one-prompt prefix); several run as
    one right-padded batch, padding attending only to itself (a fully blocked row
    would be NaN), and their segments must never look past their own prefix's length.
    `first_position`: where the texts start (job bodies read alone sit after the prefix
    budget, `models.job_states`)."""
    device, dtype = model.device, model.dtype
    if len(prefixes) == 1:
        ids = torch.tensor([list(prefixes[0])], device=device)
        positions = (first_position + torch.arange(ids.shape[1], device=device))[None]
        cache = model.model(input_ids=ids, position_ids=positions, use_cache=True).past_key_values
        return [(layer.keys, layer.values) for layer in cache.layers]
    B, P = len(prefixes), max(len(p) for p in prefixes)
    ids = torch.zeros((B, P), dtype=torch.long)
    allowed = torch.eye(P, dtype=torch.bool).repeat(B, 1, 1)
    for b, prefix in enumerate(prefixes):
        n = len(prefix)
        ids[b, :n] = torch.as_tensor(list(prefix), dtype=torch.long)
        allowed[b, :n, :n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
    mask = additive_mask(allowed, dtype)
    cache = model.model(input_ids=ids.to(device), attention_mask=mask[:, None].to(device),
                        position_ids=(first_position + torch.arange(P)).expand(B, P).to(device),
                        use_cache=True).past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def segments_over_prefixes(model, prefixes: Sequence[Ids], segments: Sequence[Segment],
                           batch: int | None = None, mix_prefixes: bool = False) -> torch.Tensor:
    """(N, d) final hidden states at every segment's answers, in order: each prefix is
    encoded once (several in one padded pass), and segments run as padded batches over
    their prefixes' KV cache rows, each seeing its own prefix's length only.

    By default a batch never mixes prefixes: one member's cache is then read by every
    segment of the batch in place (`blocks_over_shared_prefix`: no copies, and batches
    are big enough on a CPU). `mix_prefixes` fills batches across prefixes, gathering
    each segment's own cache row (a copy) for the model's own forward: one pass for many
    members' few candidates each, where a GPU would otherwise run one small pass per
    member.

    Either way segments are batched shortest first, in batches of near-equal size:
    every row of a batch is padded to its longest, and candidates' lengths vary by a
    third (padding cost 13-16 % of a 100-candidate request in arrival order)."""
    if any(len(p) == 0 for p in prefixes):
        raise ValueError("every prefix needs at least one token (score an empty prefix one prompt at a time)")
    layers = prefix_caches(model, prefixes)
    batch = batch or segment_batch(model.device)
    per_segment: list[torch.Tensor | None] = [None] * len(segments)
    for at in _length_sorted_batches(segments, batch, one_prefix_each=not mix_prefixes):
        chunk = [segments[i] for i in at]
        hidden_at_answers = _one_batch(model, layers, prefixes, chunk)
        for i, part in zip(at, hidden_at_answers.split([len(seg.answers) for seg in chunk])):
            per_segment[i] = part
    return torch.cat(per_segment)


def _one_batch(model, layers, prefixes: Sequence[Ids], chunk: Sequence[Segment]) -> torch.Tensor:
    """(N, d) hidden states at the answers of one batch of segments, in its order."""
    from transformers import DynamicCache

    device, dtype = model.device, model.dtype
    rows = [seg.prefix for seg in chunk]
    if len(set(rows)) == 1:
        return _segments_over_one_prefix(model, layers, rows[0], len(prefixes[rows[0]]), chunk)
    lengths = [len(prefixes[r]) for r in rows]
    P, K = max(lengths), len(chunk)
    S = max(len(seg.ids) for seg in chunk)
    ids = torch.zeros((K, S), dtype=torch.long)
    positions = torch.full((K, S), P, dtype=torch.long)
    allowed = torch.zeros((K, S, P + S), dtype=torch.bool)
    answers = []
    for k, seg in enumerate(chunk):
        n, own = len(seg.ids), lengths[k]
        ids[k, :n] = torch.as_tensor(seg.ids, dtype=torch.long)
        positions[k, :n] = own + seg.positions
        allowed[k, :, :own] = True  # its own prefix, never the padding after it
        allowed[k, :n, P:P + n] = seg.allowed
        allowed[k, n:, P + n:] = torch.eye(S - n, dtype=torch.bool)  # padding: itself only
        answers.extend((k, o) for o in seg.answers)
    mask = additive_mask(allowed, dtype)
    # A fresh cache per batch, each segment's own prefix row gathered (a copy):
    # `update` appends the blocks' keys in place.
    at = torch.tensor(rows, device=device)
    seg_cache = DynamicCache(ddp_cache_data=[(k[at, :, :P], v[at, :, :P]) for k, v in layers])
    hidden = model.model(
        input_ids=ids.to(device), attention_mask=mask[:, None].to(device),
        position_ids=positions.to(device), past_key_values=seg_cache, use_cache=True,
    ).last_hidden_state
    r = torch.tensor([k for k, _ in answers], device=device)
    c = torch.tensor([o for _, o in answers], device=device)
    return hidden[r, c]


def _segments_over_one_prefix(model, layers, row: int, own: int, chunk: Sequence[Segment]) -> torch.Tensor:
    """(N, d) hidden states at the answers of segments that all follow prefix `row` (of
    `own` ids), as one padded batch over its cache, broadcast (`blocks_over_shared_prefix`)."""
    device, dtype = model.device, model.dtype
    K, S = len(chunk), max(len(seg.ids) for seg in chunk)
    A = max(len(seg.answers) for seg in chunk)
    ids = torch.zeros((K, S), dtype=torch.long)
    positions = torch.full((K, S), own, dtype=torch.long)
    allowed = torch.zeros((K, S, S), dtype=torch.bool)
    answers = torch.zeros((K, A), dtype=torch.long)
    for k, seg in enumerate(chunk):
        n = len(seg.ids)
        ids[k, :n] = torch.as_tensor(seg.ids, dtype=torch.long)
        positions[k, :n] = own + seg.positions
        allowed[k, :n, :n] = seg.allowed
        allowed[k, n:, n:] = torch.eye(S - n, dtype=torch.bool)  # padding: itself only
        answers[k] = torch.as_tensor(seg.answers + seg.answers[-1:] * (A - len(seg.answers)))
    mask = additive_mask(allowed, dtype)
    prefix_kv = [(k[row:row + 1, :, :own], v[row:row + 1, :, :own]) for k, v in layers]
    hidden = blocks_over_shared_prefix(model, prefix_kv, ids.to(device), positions.to(device), mask.to(device),
                                       answers.to(device))
    return torch.cat([hidden[k, :len(seg.answers)] for k, seg in enumerate(chunk)])


def blocks_over_shared_prefix(model, prefix_kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
                              ids: torch.Tensor, positions: torch.Tensor, self_mask: torch.Tensor,
                              answers: torch.Tensor, rows_kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
                              rows_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(K, A, d) final-normed hidden states at `answers` (K, A offsets) of K rows of S
    `ids` that all follow one prefix, the decoder's blocks run by hand.

    In every block a row's queries read, under one softmax:
      * the shared prefix's cached keys and values (`prefix_kv`: a (1, KV heads, P, head
        dim) pair per layer), broadcast to the K rows, never copied;
      * optionally the row's own cached states (`rows_kv`: (K, KV heads, L, head dim)
        per layer, with `rows_mask` (K, L) additive: job bodies read alone);
      * its own ids, under `self_mask` ((S, S) or (K, S, S) additive).
    Grouped query heads read their key/value head in place (never repeated). Handing the
    same thing to the model as a cache instead copied the prefix into every row of every
    layer, repeated per query head, and masked it with a float tensor as large: most of
    a request at a long prefix (FlashInfer calls this shape cascade attention). The last
    block computes queries, attention and MLP only at the answers: elsewhere its keys
    and values are all that is read. Llama's blocks: pre-norm attention with rotary
    positions and grouped key/value heads, then the MLP."""
    decoder = model.model
    K, S = ids.shape
    if self_mask.dim() == 2:
        self_mask = self_mask.expand(K, S, S)
    x = decoder.embed_tokens(ids)
    cos, sin = decoder.rotary_emb(x, position_ids=positions)
    last = len(decoder.layers) - 1
    for i, layer in enumerate(decoder.layers):
        attn = layer.self_attn
        hd = attn.head_dim
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(K, S, -1, hd).transpose(1, 2)  # (K, H, S, hd)
        k = attn.k_proj(h).view(K, S, -1, hd).transpose(1, 2)  # (K, Hkv, S, hd)
        v = attn.v_proj(h).view(K, S, -1, hd).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        mask = self_mask
        if i == last:  # only the answers' queries, and the rows of the mask they read
            A = answers.shape[1]
            q = q.gather(2, answers[:, None, :, None].expand(K, q.shape[1], A, hd))
            mask = self_mask.gather(1, answers[:, :, None].expand(K, A, S))
            x = x.gather(1, answers[:, :, None].expand(K, A, x.shape[-1]))
        H, Hkv, Q = q.shape[1], k.shape[1], q.shape[2]
        G = H // Hkv  # query heads per key/value head: head h reads key/value head h // G
        q = q.reshape(K, Hkv, G * Q, hd)
        own = [(k, v, mask[:, None].repeat(1, 1, G, 1))]
        if rows_kv is not None:
            own.insert(0, (rows_kv[i][0], rows_kv[i][1], rows_mask[:, None, None, :]))
        mixed, lse = _attention_over_own(q, own, attn.scaling)
        if prefix_kv is not None:  # one softmax over both: merged by their log-sum-exps
            shared, shared_lse = _attention_over_shared_prefix(q, *prefix_kv[i], attn.scaling)
            total = torch.logaddexp(lse, shared_lse)
            mixed = (mixed * torch.exp(lse - total)[..., None].to(mixed.dtype)
                     + shared * torch.exp(shared_lse - total)[..., None].to(shared.dtype))
        mixed = mixed.view(K, H, Q, hd).transpose(1, 2).reshape(K, Q, H * hd)
        x = x + attn.o_proj(mixed)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return decoder.norm(x)


def _attention_over_own(q: torch.Tensor, parts, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows' queries (K, KV heads, N, head dim) over their own keys: `parts` of (keys,
    values, additive mask), each (K, KV heads, n, head dim). The output and its
    log-sum-exp (K, KV heads, N), for merging with the shared prefix's."""
    scores = [(q * scale) @ k.transpose(-1, -2) + m for k, _, m in parts]
    joined = torch.cat(scores, dim=-1) if len(scores) > 1 else scores[0]
    lse = torch.logsumexp(joined, dim=-1)
    weights = torch.exp(joined - lse[..., None])
    out, at = 0, 0
    for sc, (_, v, _) in zip(scores, parts):
        out = out + weights[..., at:at + sc.shape[-1]] @ v
        at += sc.shape[-1]
    return out, lse


def _attention_over_shared_prefix(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                                  scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row's queries (K, KV heads, N, head dim) over one prefix's keys and values
    (1, KV heads, P, head dim), as one query sequence of K x N per key/value head, so
    the prefix is read once and never copied per row. On a CPU that is torch's fused
    flash kernel, the one that returns the log-sum-exp the merge needs; elsewhere the
    plain product. The output and its log-sum-exp, in the rows' layout."""
    K, Hkv, N, hd = q.shape
    flat = q.transpose(0, 1).reshape(1, Hkv, K * N, hd)
    keys, values = keys.contiguous(), values.contiguous()
    if flat.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(flat, keys, values, 0.0, False,
                                                                               scale=scale)
    else:
        scores = (flat * scale) @ keys.transpose(-1, -2)
        lse = torch.logsumexp(scores, dim=-1)
        out = torch.exp(scores - lse[..., None]) @ values
    return out.view(Hkv, K, N, hd).transpose(0, 1), lse.view(Hkv, K, N).transpose(0, 1)


def _length_sorted_batches(segments: Sequence[Segment], batch: int, one_prefix_each: bool = True):
    """Indices of the segments, shortest first, cut into the fewest batches of at most
    `batch`, as near equal in size as can be: each prefix's segments apart
    (`one_prefix_each`), or all of them together, prefixes mixed."""
    groups: dict[int, list[int]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(seg.prefix if one_prefix_each else 0, []).append(i)
    for group in groups.values():
        group.sort(key=lambda i: len(segments[i].ids))
        size = math.ceil(len(group) / math.ceil(len(group) / batch))
        for start in range(0, len(group), size):
            yield group[start:start + size]


def score_with_prefix_cache(model, prefix_ids: Ids, bodies: Sequence[Ids], markers: Sequence[Ids],
                            yes_id: int, no_id: int, batch: int | None = None) -> torch.Tensor:
    """Run the prefix once, then all job blocks as one padded batch over its KV cache."""
    if len(prefix_ids) == 0:
        return score_one_by_one(model, prefix_ids, bodies, markers, yes_id, no_id)
    return score_rows_with_prefix_cache(model, [(prefix_ids, bodies)], markers, yes_id, no_id, batch)[0]


def score_rows_with_prefix_cache(model, rows: Sequence[tuple[Ids, Sequence[Ids]]], markers: Sequence[Ids],
                                 yes_id: int, no_id: int, batch: int | None = None,
                                 mix_prefixes: bool = False) -> list[torch.Tensor]:
    """Several members at once (dynamic batching across requests): every row's prefix
    once, all in one padded pass, then the job blocks in padded batches over their own
    member's cache (`segments_over_prefixes`). A (K_i, T, 2) tensor per row."""
    segments = [seg for r, (_, bodies) in enumerate(rows) for seg in job_segments(r, bodies, markers)]
    if not segments:
        return [torch.zeros((0, len(markers), 2)) for _ in rows]
    hidden = segments_over_prefixes(model, [p for p, _ in rows], segments, batch, mix_prefixes)
    logits = yes_no_logits(model, hidden, yes_id, no_id)
    sizes = [len(bodies) * len(markers) for _, bodies in rows]
    return [part.view(len(bodies), len(markers), 2) for part, (_, bodies) in zip(logits.split(sizes), rows)]


def label_probabilities(model, query_ids: Ids, items: Sequence[Ids], label_ids: Sequence[int],
                        apply_softmax: bool, item_first: bool = False, batch: int | None = None) -> torch.Tensor:
    """(N, L) probability of each label token as the next token after `query + item`
    (SGLang's scoring API): over the whole vocabulary, or, with `apply_softmax`, over
    the label tokens only. The query is encoded once and every item is a segment over
    its cache; with `item_first` (`item + query`) nothing is shared and each prompt
    runs alone in a padded batch."""
    if len(query_ids) and not item_first:
        hidden = segments_over_prefixes(model, [query_ids], [causal_segment(0, item) for item in items], batch)
    else:
        prompts = [list(item) + list(query_ids) if item_first else list(item) for item in items]
        hidden = last_hidden_of_prompts(model, prompts, batch=16)
    rows = list(label_ids)
    if apply_softmax:
        return torch.softmax(label_logits(model, hidden, rows).float(), dim=-1)
    full = model.get_output_embeddings()(hidden).float()
    return torch.softmax(full, dim=-1)[:, rows]
