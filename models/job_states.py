"""Jobs read alone: each job's keys and values computed once, reused by every member.

In the 360Brew layout (`models.multi_item`) a job's body attends to the member prefix,
so every request re-encodes all K bodies: at k = 50 that is most of a request's tokens
(~60 ids a body against one prefix of ~380). A checkpoint trained in the *jobs read
alone* layout (`ranker.json`: `"body_position": N`) lets each body see only itself, at
positions N, N+1, ... whatever the member's prefix length, in every block. Its keys and
values then depend on the job alone: they are computed once per job (when it is first
scored, or ahead of time with `JobStates.warm`) and kept. A request runs only

    [ prefix ]  +  K x [ marker ]        over the cached [ body_1 | ... | body_K ]

so its cost is the prefix and ~4 marker ids a job, not the bodies. The markers still
see both the member and the job in every block: the interaction happens there. This is
PreTTR's idea (MacAvaney et al., SIGIR 2020: precompute the document's term states)
with the query-document interaction left to a few answer tokens, and the same block
mask training uses (`multi_item.pack_rows(..., body_position=N)`), so serving computes
the function that was trained.

The price is memory: a job's states are layers x 2 x KV heads x its ids x head dim
numbers (8 blocks, 3 KV heads, 64 dims, 60 ids: 0.7 MB in float32). `JobStates` keeps
the most recently used within a byte budget and recomputes what it dropped.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import accumulate
from typing import Sequence

import torch
from models.multi_item import Ids, blocks_over_shared_prefix, prefix_caches, yes_no_logits

JOB_STATE_BYTES = 1 << 30  # the cache's default budget: ~1,500 jobs of the 8-block teacher


@torch.no_grad()  # a kept state with its autograd graph would keep its batch's every activation alive
def body_states(model, bodies: Sequence[Ids], body_position: int, batch: int = 32) -> list[torch.Tensor]:
    """Each body's (layers, 2, KV heads, len, head dim) keys and values, the body read
    alone from position `body_position` (`multi_item.prefix_caches`' padded batches)."""
    out: list[torch.Tensor] = []
    for start in range(0, len(bodies), batch):
        chunk = bodies[start:start + batch]
        stacked = torch.stack([torch.stack([k, v]) for k, v in prefix_caches(model, chunk, body_position)])
        out.extend(stacked[:, :, i, :, :len(body)].clone() for i, body in enumerate(chunk))  # (l, 2, h, n, d)
    return out


class JobStates:
    """Job body ids -> their cached states, least recently used dropped past `max_bytes`.

    Keyed by the body's ids, so an edited job (other text, other ids) is a new entry and
    the old one ages out. The cache belongs to one model (a `Ranker`) and empties itself
    when any of its weights changes in place (a training step, a loaded head): states of
    other weights would score silently wrong."""

    def __init__(self, model, body_position: int, max_bytes: int = JOB_STATE_BYTES):
        self.model = model
        self.body_position = body_position
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = self.warmed = 0  # warmed: computed ahead, outside a request
        self._states: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self._weights = self._weights_version()

    def _weights_version(self) -> tuple:
        # Every in-place write to a tensor bumps its version counter: (identity, version)
        # of each parameter changes with any update, and reading it costs microseconds.
        return tuple((id(p), p._version) for p in self.model.parameters())

    def __len__(self) -> int:
        return len(self._states)

    def get(self, bodies: Sequence[Ids]) -> list[torch.Tensor]:
        """The states of every body, in order, computing the missing ones in one pass."""
        return self._get(bodies, count=True)

    def warm(self, bodies: Sequence[Ids]) -> None:
        """Compute and keep these bodies' states ahead of their first request (counted
        in `warmed`, not as hits or misses: those are what requests met)."""
        self._get(bodies, count=False)

    def _get(self, bodies: Sequence[Ids], count: bool) -> list[torch.Tensor]:
        keys = [tuple(int(t) for t in b) for b in bodies]
        weights = self._weights_version()
        with self._lock:
            if weights != self._weights:
                self._states.clear()
                self.bytes, self._weights = 0, weights
            found = {k: self._states[k] for k in keys if k in self._states}
            for k in found:
                self._states.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if count:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        else:
            self.warmed += len(missing)
        if missing:
            found.update(zip(missing, body_states(self.model, missing, self.body_position)))
            with self._lock:
                for k in missing:
                    self._put(k, found[k])
        return [found[k] for k in keys]

    def _put(self, key: tuple[int, ...], states: torch.Tensor) -> None:
        if key in self._states:
            return
        size = states.numel() * states.element_size()
        self._states[key] = states
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._states) > 1:
            _, old = self._states.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


def score_over_job_states(model, rows: Sequence[tuple[Ids, Sequence[Ids]]], markers: Sequence[Ids],
                          yes_id: int, no_id: int, states: JobStates) -> list[torch.Tensor]:
    """(K_i, T, 2) Yes/No logits per (prefix, bodies) row: every prefix encoded once (one
    padded pass), then, per member, its K jobs' T markers as a batch of K rows over the
    prefix's cache and the bodies' cached states (`marker_hidden`). Equal, within float
    rounding, to `multi_item.score_multi_item(..., body_position=states.body_position)`."""
    device = model.device
    # An empty prefix (a member with no text at all) has no cache rows: its markers see the job only.
    nonempty = [r for r, (p, _) in enumerate(rows) if p]
    layers = prefix_caches(model, [rows[r][0] for r in nonempty]) if nonempty else []
    cache_row = {r: i for i, r in enumerate(nonempty)}
    out = []
    for r, (prefix, bodies) in enumerate(rows):
        if not bodies:
            out.append(torch.zeros((0, len(markers), 2), device=device))
            continue
        own = len(prefix)
        if own > states.body_position:
            raise ValueError(f"a prefix of {own} ids runs past the bodies' position {states.body_position}")
        c = cache_row.get(r)
        prefix_kv = None if c is None else [(k[c:c + 1, :, :own], v[c:c + 1, :, :own]) for k, v in layers]
        hidden = marker_hidden(model, prefix_kv, states.get(bodies), markers, states.body_position)
        out.append(yes_no_logits(model, hidden, yes_id, no_id))
    return out


def marker_hidden(model, prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None, bodies: Sequence[torch.Tensor],
                  markers: Sequence[Ids], body_position: int) -> torch.Tensor:
    """(K, T, d) final-normed hidden states at the T markers' answers (their last ids)
    after each of K bodies.

    K rows of the S marker ids run over the prefix's keys (read in place by every row),
    the row's own body (the K cached states padded into one tensor: the request's only
    copy) and the row's markers, each marker seeing its own ids causally: exactly the
    block mask of `pack_rows(..., body_position)` (`multi_item.blocks_over_shared_prefix`).
    Handing all of it to the model as one sequence with a mask instead copied the prefix
    and every body into each layer's cache and scored every marker against every job,
    9 in 10 of them masked away (~45% of a request at k = 50)."""
    device, dtype = model.device, model.dtype
    K, ids = len(bodies), [t for m in markers for t in m]
    S = len(ids)
    lengths = torch.tensor([b.shape[3] for b in bodies])
    L = int(lengths.max())
    n_layers, _, Hkv, _, head_dim = bodies[0].shape
    # Only the padding is zeroed (masked keys still need finite values: 0 x NaN is NaN);
    # zero-filling the whole tensor first cost a tenth of a request at k = 50.
    padded = torch.empty((n_layers, 2, K, Hkv, L, head_dim), dtype=bodies[0].dtype, device=device)
    for j, b in enumerate(bodies):
        n = b.shape[3]
        padded[:, :, j, :, :n] = b
        padded[:, :, j, :, n:] = 0
    offsets = torch.cat([torch.arange(len(m)) for m in markers])
    positions = (body_position + lengths[:, None] + offsets[None, :]).to(device)  # (K, S)
    blocked = torch.finfo(dtype).min
    body_mask = torch.where(torch.arange(L)[None, :] < lengths[:, None], 0.0, blocked).to(dtype)  # (K, L)
    own = torch.zeros((S, S), dtype=torch.bool)
    at = 0
    for m in markers:
        own[at:at + len(m), at:at + len(m)] = torch.tril(torch.ones(len(m), len(m), dtype=torch.bool))
        at += len(m)
    self_mask = torch.zeros((S, S), dtype=dtype).masked_fill_(~own, blocked).to(device)
    ends = torch.tensor(list(accumulate(len(m) for m in markers))) - 1  # each marker's answer
    return blocks_over_shared_prefix(model, prefix_kv, torch.tensor(ids, device=device).expand(K, S), positions,
                                     self_mask, ends.expand(K, -1).to(device),
                                     rows_kv=[(padded[i, 0], padded[i, 1]) for i in range(n_layers)],
                                     rows_mask=body_mask.to(device))
