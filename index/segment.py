"""An immutable block of jobs and the one-pass scoring of a batch of queries over it.

A segment holds, for n jobs: their ids, embeddings, and a term-major CSR posting
matrix (vocabulary x n, 1 where the job has the term). Scoring a batch is one dense
product, one sparse product over the posting lists, then masks, then top-k.

Head terms. A term that a large share of jobs carry (a seniority level, a big city,
a popular occupation) has a posting list so long that walking it costs more than a
dense column: the segment keeps its `max_head` most frequent such terms as extra 0/1
columns beside the embeddings, so the one dense product scores them with the
similarity, and the sparse product only walks the short (tail) posting lists. The
result is the same sum; only where it is computed changes. The columns sit beside the
embeddings in one row-major matrix, so one product computes both (a separate product
for them cost about as much again as the embedding product: it is bound by writing
the score matrix, not by arithmetic); a dense-only query reads the embedding columns
through a strided view.

Tombstones are not part of the segment: the index keeps them beside it, so deleting
never rewrites arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from index.topk import NEG_INF, candidates, merge_top
from index.xp import Backend

HEAD_MIN_SHARE = 1 / 128  # a term carried by at least this share of jobs may become a column
HEAD_MIN_JOBS = 4096  # below this a segment keeps no head columns: every list is short
# Catalog rows scored per step (see Segment.search). Measured at 1M jobs x d=128, 1,000 queries,
# k=100 on 2 shared cores against faiss IndexFlatIP in turns: 16k rows 1.8x/1.3x faiss's time (chunks of
# 64/256 queries), 32k-128k within noise of each other (0.9-1.3x); 32k keeps a 256-query block in L3.
BLOCK_ROWS = 32_768


@dataclass(frozen=True)
class Segment:
    backend: Backend
    job_ids: np.ndarray  # (n,) object, host
    dim: int
    vectors: Any  # (n, dim + h) float32 on the backend: [embedding | head-term 0/1 columns]
    head_cols: np.ndarray  # (h,) vocabulary columns of the head terms
    job_terms: sp.csr_matrix  # (n, n_terms) host, job-major: explanations and compaction
    embeddings_host: np.ndarray  # (n, dim) float32 host (the same array on the NumPy backend)
    ann: Any = None  # faiss candidate generator (approximate mode, main segment only)

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {j: i for i, j in enumerate(self.job_ids.tolist())}

    @cached_property
    def postings(self) -> Any:
        """(n_terms, n) CSR on the backend, 1 where job has term: every term (masks)."""
        p = self.job_terms.T.tocsr()
        p.sort_indices()
        return p if self.backend.name == "numpy" else self.backend.sparse.csr_matrix(p)

    @cached_property
    def tail_postings(self) -> Any:
        """The posting lists with the head terms' rows emptied (scoring)."""
        if not len(self.head_cols):
            return self.postings
        keep = np.ones(self.job_terms.shape[1], np.float32)
        keep[self.head_cols] = 0
        p = sp.csr_matrix(self.job_terms @ sp.diags(keep)).T.tocsr()
        p.eliminate_zeros()
        p.sort_indices()
        return p if self.backend.name == "numpy" else self.backend.sparse.csr_matrix(p)

    @property
    def size(self) -> int:
        return len(self.job_ids)

    @property
    def n_terms(self) -> int:
        return self.job_terms.shape[1]

    @classmethod
    def build(cls, backend: Backend, job_ids: list[str] | np.ndarray, embeddings: np.ndarray,
              job_terms: sp.csr_matrix, max_head: int = 32, warm: bool = True) -> "Segment":
        """warm: build the posting lists now (main segments), not on first use."""
        ids = np.asarray(job_ids, dtype=object)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(ids) or job_terms.shape[0] != len(ids):
            raise ValueError(
                f"segment parts disagree: {len(ids)} ids, embeddings {emb.shape}, terms {job_terms.shape}")
        n, dim = emb.shape
        job_terms = sp.csr_matrix(job_terms, dtype=np.float32)
        df = np.bincount(job_terms.indices, minlength=job_terms.shape[1])
        head = np.zeros(0, np.int64)
        if n >= HEAD_MIN_JOBS and max_head > 0:
            by_df = np.argsort(-df, kind="stable")[:max_head]
            head = np.sort(by_df[df[by_df] >= HEAD_MIN_SHARE * n])
        vectors = np.empty((n, dim + len(head)), np.float32)
        vectors[:, :dim] = emb
        if len(head):
            vectors[:, dim:] = job_terms[:, head].toarray()
        on_device = backend.name != "numpy"
        seg = cls(
            backend=backend,
            job_ids=ids,
            dim=dim,
            vectors=backend.asarray(vectors),
            head_cols=head,
            job_terms=job_terms,
            embeddings_host=np.ascontiguousarray(emb) if on_device else vectors[:, :dim],
        )
        if warm:
            seg.postings, seg.tail_postings, seg.row_of  # noqa: B018 — computed once, here
        return seg

    @classmethod
    def empty(cls, backend: Backend, dim: int, n_terms: int = 0) -> "Segment":
        return cls.build(backend, [], np.zeros((0, dim), np.float32), sp.csr_matrix((0, n_terms), dtype=np.float32))

    def take(self, rows: np.ndarray, with_terms: bool = True) -> "Segment":
        """The sub-segment of the given rows (approximate-mode rescoring); without
        terms when the queries have none to match, mask or require."""
        terms = self.job_terms[rows] if with_terms else sp.csr_matrix((len(rows), self.n_terms), dtype=np.float32)
        return Segment.build(self.backend, self.job_ids[rows], self.embeddings_host[rows], terms,
                             max_head=0, warm=False)

    # ---- scoring -------------------------------------------------------------------

    def restrict(self, term_matrix: sp.csr_matrix) -> sp.csr_matrix:
        """A host (queries x vocabulary) CSR cut to this segment's columns.

        Terms newer than the segment match none of its jobs, so dropping them is exact."""
        m = term_matrix
        if m.shape[1] > self.n_terms:
            m = m[:, : self.n_terms]
        elif m.shape[1] < self.n_terms:
            m = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], self.n_terms))
        return m

    def _pairs(self, term_matrix: sp.csr_matrix, postings: Any) -> "_Pairs":
        """Walk the posting lists of every (query, term) entry of term_matrix.

        One (query, job, weight) per posting touched: the inverted-index pass, its work
        the length of the lists walked. Grouped by catalog block, in walk order inside
        each block (a stable sort), so block-wise sums add in the same order as before."""
        xp = self.backend.xp
        m = self.restrict(term_matrix)
        terms = self.backend.asarray(m.indices)
        lists = postings[terms]  # the posting rows, in (query, term) order
        lengths = xp.diff(lists.indptr)
        per_query = self.backend.asarray(np.diff(m.indptr))
        repeat = self.backend.repeat
        query = repeat(repeat(xp.arange(m.shape[0]), per_query), lengths)
        job = lists.indices.astype(xp.int64)
        weight = repeat(self.backend.asarray(m.data), lengths)
        block = job // BLOCK_ROWS
        order = xp.argsort(block, kind="stable")
        n_blocks = -(-self.size // BLOCK_ROWS)
        bounds = self.backend.to_host(xp.searchsorted(block[order], xp.arange(n_blocks + 1)))
        return _Pairs(query[order], job[order], weight[order], bounds)

    def _plan(self, query_embeddings: Any | None, weights: sp.csr_matrix | None,
              forbid: sp.csr_matrix | None, must_groups: list[sp.csr_matrix], must_needed: np.ndarray,
              dead_rows: Any, excluded: tuple[np.ndarray, np.ndarray]) -> "_Plan":
        """Everything a batch needs per catalog block, prepared once for the whole segment."""
        xp = self.backend.xp
        head_w = None
        if len(self.head_cols) and weights is not None:
            hw = self.restrict(weights)[:, self.head_cols]
            if hw.nnz:
                head_w = self.backend.asarray(hw.toarray())
        # the dense left factor and the columns of `vectors` it multiplies
        if query_embeddings is not None and head_w is not None:
            left, cols = xp.concatenate([query_embeddings, head_w], axis=1), slice(None)
        elif query_embeddings is not None:
            left, cols = query_embeddings, slice(0, self.dim)
        elif head_w is not None:
            left, cols = head_w, slice(self.dim, None)
        else:
            left, cols = None, None
        q_idx, job_rows = excluded
        return _Plan(
            n_queries=len(must_needed),
            left=left,
            cols=cols,
            terms=self._pairs(weights, self.tail_postings) if weights is not None and weights.nnz else None,
            forbid=self._pairs(forbid, self.postings) if forbid is not None and forbid.nnz else None,
            must=[self._pairs(g, self.postings) for g in must_groups],
            needed=self.backend.asarray(must_needed.astype(np.int8)),
            dead=dead_rows if dead_rows is not None and len(dead_rows) else None,
            excluded=(np.asarray(q_idx, np.int64), np.asarray(job_rows, np.int64)),
        )

    def score_block(self, plan: "_Plan", lo: int, hi: int) -> Any:
        """Fused scores (queries, hi - lo) for catalog rows lo:hi, every mask applied:
        one dense product, the block's share of the posting walk, then masks."""
        xp, b = self.backend.xp, lo // BLOCK_ROWS
        width = hi - lo
        if plan.left is not None:
            scores = plan.left @ self.vectors[lo:hi, plan.cols].T
        else:
            scores = xp.zeros((plan.n_queries, width), dtype=xp.float32)
        flat = scores.reshape(-1)
        if plan.terms is not None:
            at, w = plan.terms.block(b, lo, width)
            self.backend.scatter_add(flat, at, w)
        if plan.forbid is not None:
            at, _ = plan.forbid.block(b, lo, width)
            flat[at] = NEG_INF
        if plan.must:
            met = xp.zeros(scores.shape, dtype=xp.int8)
            for group in plan.must:
                at, _ = group.block(b, lo, width)
                hit = xp.zeros(scores.size, dtype=xp.int8)
                hit[at] = 1  # a job with two terms of one group meets it once
                met += hit.reshape(scores.shape)
            scores[met < plan.needed[:, None]] = NEG_INF
        if plan.dead is not None:
            a, z = (int(i) for i in self.backend.to_host(xp.searchsorted(plan.dead, xp.asarray([lo, hi]))))
            if z > a:
                scores[:, plan.dead[a:z] - lo] = NEG_INF
        q_idx, job_rows = plan.excluded
        inside = (job_rows >= lo) & (job_rows < hi)
        if inside.any():
            scores[self.backend.asarray(q_idx[inside]), self.backend.asarray(job_rows[inside] - lo)] = NEG_INF
        return scores

    def search(self, k: int, **score_args: Any) -> tuple[np.ndarray, np.ndarray]:
        """Host (values, rows), each (queries, min(k, n)), best first; -inf marks no result.

        Blocked over the catalog, as faiss's flat search is: each block of BLOCK_ROWS
        rows is scored, masked and cut to the scores that can still enter the running
        top-k, which is merged as it goes. No (queries x catalog) matrix is allocated."""
        n_q = len(score_args["must_needed"])
        if self.size == 0:
            return np.zeros((n_q, 0), np.float32), np.zeros((n_q, 0), np.int64)
        return self._blocked_top(self._plan(**score_args), k)

    def tail_term_top(self, weights: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Host (values, rows): per query, the k best sums over the tail posting lists
        alone (approximate mode's term candidates), blocked like `search`."""
        n_q = weights.shape[0]
        plan = _Plan(n_queries=n_q, left=None, cols=None, terms=self._pairs(weights, self.tail_postings),
                     forbid=None, must=[], needed=None, dead=None,
                     excluded=(np.zeros(0, np.int64), np.zeros(0, np.int64)))
        return self._blocked_top(plan, k)

    def _blocked_top(self, plan: "_Plan", k: int) -> tuple[np.ndarray, np.ndarray]:
        xp, n_q = self.backend.xp, plan.n_queries
        k = min(k, self.size)
        # running top-k; its k-th value is the floor a later score must reach (ties kept)
        vals = xp.full((n_q, k), NEG_INF, dtype=xp.float32)
        cols = xp.zeros((n_q, k), dtype=xp.int64)
        for lo in range(0, self.size, BLOCK_ROWS):
            hi = min(lo + BLOCK_ROWS, self.size)
            cand, cand_cols = candidates(xp, self.score_block(plan, lo, hi), k, floor=vals[:, -1])
            vals, cols = merge_top(xp, vals, cols, cand, cand_cols + lo, k)
        return self.backend.to_host(vals), self.backend.to_host(cols)


@dataclass(frozen=True)
class _Pairs:
    """Postings walked for a batch, grouped by catalog block (`bounds` on the host)."""

    query: Any
    job: Any
    weight: Any
    bounds: np.ndarray

    def block(self, b: int, lo: int, width: int) -> tuple[Any, Any]:
        """(flat index into a (queries, width) block, weight) for block b, which starts at row lo."""
        s = slice(int(self.bounds[b]), int(self.bounds[b + 1]))
        return self.query[s] * width + (self.job[s] - lo), self.weight[s]


@dataclass(frozen=True)
class _Plan:
    n_queries: int
    left: Any  # (queries, d') dense factor, or None
    cols: slice | None  # the columns of Segment.vectors it multiplies
    terms: _Pairs | None
    forbid: _Pairs | None
    must: list[_Pairs]
    needed: Any  # (queries,) int8 groups each query must meet
    dead: Any  # sorted tombstoned rows on the backend, or None
    excluded: tuple[np.ndarray, np.ndarray]  # host (query, row) pairs
