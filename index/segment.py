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
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from index.ann import proposal_scores
from index.scan import BlockPostings, Filters, scan_topk
from index.topk import NEG_INF, topk
from index.xp import Backend

HEAD_MIN_SHARE = 1 / 128  # a term carried by at least this share of jobs may become a column
HEAD_MIN_JOBS = 4096  # below this a segment keeps no head columns: every list is short


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
        """The posting lists with the head terms' rows emptied (matrix scan)."""
        if not len(self.head_cols):
            return self.postings
        p = self.tail_terms.T.tocsr()
        p.sort_indices()
        return p if self.backend.name == "numpy" else self.backend.sparse.csr_matrix(p)

    @cached_property
    def block_postings(self) -> BlockPostings:
        """The tail posting lists cut into the CPU scan's blocks (index/scan.py)."""
        return BlockPostings.build(self.tail_terms)

    @cached_property
    def tail_terms(self) -> sp.csr_matrix:
        """job_terms without the head terms (scored as columns): what posting lists score."""
        if not len(self.head_cols):
            return self.job_terms
        keep = np.ones(self.n_terms, np.float32)
        keep[self.head_cols] = 0
        tail = sp.csr_matrix(self.job_terms @ sp.diags(keep))
        tail.eliminate_zeros()
        return tail

    @property
    def size(self) -> int:
        return len(self.job_ids)

    @property
    def n_terms(self) -> int:
        return self.job_terms.shape[1]

    @classmethod
    def build(cls, backend: Backend, job_ids: list[str] | np.ndarray, embeddings: np.ndarray,
              job_terms: sp.csr_matrix, max_head: int = 32, warm: Literal["fused", "matrix"] | None = None
              ) -> "Segment":
        """warm: build now, not on first search, what that scan reads (its posting lists)."""
        ids = np.asarray(job_ids, dtype=object)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(ids) or job_terms.shape[0] != len(ids):
            raise ValueError(
                f"segment parts disagree: {len(ids)} ids, embeddings {emb.shape}, terms {job_terms.shape}")
        n, dim = emb.shape
        job_terms = sp.csr_matrix(job_terms, dtype=np.float32)
        job_terms.sort_indices()  # the CPU scan merges a job's terms with a query's
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
        if warm == "fused":
            seg.block_postings, seg.row_of  # noqa: B018 — computed once, here
        elif warm == "matrix":
            seg.postings, seg.tail_postings, seg.row_of  # noqa: B018
        return seg

    @classmethod
    def empty(cls, backend: Backend, dim: int, n_terms: int = 0) -> "Segment":
        return cls.build(backend, [], np.zeros((0, dim), np.float32), sp.csr_matrix((0, n_terms), dtype=np.float32))

    def take(self, rows: np.ndarray, with_terms: bool = True) -> "Segment":
        """The sub-segment of the given rows (approximate-mode rescoring); without
        terms when the queries have none to match, mask or require."""
        terms = self.job_terms[rows] if with_terms else sp.csr_matrix((len(rows), self.n_terms), dtype=np.float32)
        return Segment.build(self.backend, self.job_ids[rows], self.embeddings_host[rows], terms, max_head=0)

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

    def _pairs(self, term_matrix: sp.csr_matrix, postings: Any, n_queries: int) -> tuple[Any, Any]:
        """Walk the posting lists of every (query, term) entry of term_matrix.

        Returns (flat index query * n + job, weight) on the backend, one per posting
        touched: the inverted-index pass, its work the length of the lists walked."""
        xp = self.backend.xp
        m = self.restrict(term_matrix)
        if not m.nnz:  # e.g. only terms newer than this segment; no empty fancy index on a device
            return xp.zeros(0, xp.int64), xp.zeros(0, xp.float32)
        terms = self.backend.asarray(m.indices)
        lists = postings[terms]  # the posting rows, in (query, term) order
        entry = self.backend.repeat_index(xp.diff(lists.indptr))  # each posting's (query, term) entry
        query_of = self.backend.asarray(np.repeat(np.arange(n_queries), np.diff(m.indptr)))
        flat = query_of[entry] * self.size + lists.indices
        weights = self.backend.asarray(m.data)[entry]
        return flat, weights

    def add_term_scores(self, scores: Any, weights: sp.csr_matrix) -> None:
        flat, w = self._pairs(weights, self.tail_postings, scores.shape[0])
        self.backend.xp.add.at(scores.reshape(-1), flat, w)  # repeated (query, job) pairs sum

    def mask_terms(self, scores: Any, forbid: sp.csr_matrix) -> None:
        flat, _ = self._pairs(forbid, self.postings, scores.shape[0])
        scores.reshape(-1)[flat] = NEG_INF

    def dense_operands(self, query_embeddings: Any | None, weights: sp.csr_matrix | None) -> tuple[Any, Any] | None:
        """(query matrix, job matrix) whose product is the similarity plus the head-term
        scores; None when the queries have neither."""
        xp, head_w = self.backend.xp, None
        if len(self.head_cols) and weights is not None:
            hw = self.restrict(weights)[:, self.head_cols]
            if hw.nnz:
                head_w = self.backend.asarray(hw.toarray())
        if query_embeddings is not None and head_w is None and len(self.head_cols) and self.backend.name != "numpy":
            # CuPy copies a strided operand before its product (the whole catalog's
            # embeddings, per chunk); zero head weights read the matrix in place instead
            head_w = xp.zeros((query_embeddings.shape[0], len(self.head_cols)), dtype=query_embeddings.dtype)
        if query_embeddings is not None and head_w is not None:
            return xp.concatenate([query_embeddings, head_w], axis=1), self.vectors
        if query_embeddings is not None:
            return query_embeddings, self.vectors[:, : self.dim]
        if head_w is not None:
            return head_w, self.vectors[:, self.dim:]
        return None

    def dense_scores(self, query_embeddings: Any | None, weights: sp.csr_matrix | None, rows: int) -> Any:
        """Similarity plus head-term scores: dense products only."""
        operands = self.dense_operands(query_embeddings, weights)
        if operands is None:
            xp = self.backend.xp
            return xp.zeros((rows, self.size), dtype=xp.float32)
        queries, jobs = operands
        return queries @ jobs.T

    def proposal_scores(self, query_embeddings: np.ndarray, proposals: np.ndarray) -> np.ndarray:
        """Each query's exact similarity with its own proposals (rows; -1: none), read in
        place. On NumPy with head columns the embeddings are a column slice of `vectors`,
        which faiss's by-id kernel cannot read: it reads whole rows of `vectors` against
        queries zero-padded over the head columns, rather than copying the catalog's
        embeddings on every call."""
        x, queries = self.embeddings_host, query_embeddings
        if not x.flags.c_contiguous:
            x = self.vectors
            queries = np.pad(queries, ((0, 0), (0, x.shape[1] - self.dim)))
        return proposal_scores(x, queries, proposals)

    def require_terms(self, scores: Any, groups: list[sp.csr_matrix], needed: np.ndarray) -> None:
        """Keep a job for query i only if it has a term from each of i's `needed[i]` groups."""
        xp = self.backend.xp
        met = xp.zeros(scores.shape, dtype=xp.int8)
        for group in groups:
            flat, _ = self._pairs(group, self.postings, scores.shape[0])
            hit = xp.zeros(scores.size, dtype=xp.int8)
            hit[flat] = 1  # a job with two terms of one group meets it once
            met += hit.reshape(scores.shape)
        need = self.backend.asarray(needed.astype(np.int8))
        scores[met < need[:, None]] = NEG_INF

    def score(self, query_embeddings: Any | None, weights: sp.csr_matrix | None,
              forbid: sp.csr_matrix | None, must_groups: list[sp.csr_matrix], must_needed: np.ndarray,
              dead_rows: Any, excluded: tuple[np.ndarray, np.ndarray]) -> Any:
        """Fused scores (queries, n) for this segment, every mask applied."""
        scores = self.dense_scores(query_embeddings, weights, len(must_needed))
        if weights is not None and weights.nnz:
            self.add_term_scores(scores, weights)
        if forbid is not None and forbid.nnz:
            self.mask_terms(scores, forbid)
        if must_groups:
            self.require_terms(scores, must_groups, must_needed)
        if dead_rows is not None and len(dead_rows):
            scores[:, dead_rows] = NEG_INF
        q_idx, job_rows = excluded
        if len(q_idx):
            scores[self.backend.asarray(q_idx), self.backend.asarray(job_rows)] = NEG_INF
        return scores

    def search(self, k: int, fused: bool = False, **score_args: Any) -> tuple[np.ndarray, np.ndarray]:
        """Host (values, rows), each (queries, k'), best first; -inf marks no result.

        fused: the CPU scan of index/scan.py (NumPy backend), which never writes the
        (queries x n) score matrix; otherwise `score` then `topk` (any backend)."""
        if self.size == 0:
            rows = len(score_args["must_needed"])
            return np.zeros((rows, 0), np.float32), np.zeros((rows, 0), np.int64)
        if fused:
            return self.scan(k, **score_args)
        scores = self.score(**score_args)
        values, cols = topk(self.backend.xp, scores, k)
        return self.backend.to_host(values), self.backend.to_host(cols)

    def scan(self, k: int, query_embeddings: Any | None, weights: sp.csr_matrix | None,
             forbid: sp.csr_matrix | None, must_groups: list[sp.csr_matrix], must_needed: np.ndarray,
             dead_rows: Any, excluded: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The same fused scores and masks as `score`, top-k by index/scan.py."""
        if self.backend.name != "numpy":
            raise ValueError("the fused scan runs on the NumPy backend; CuPy uses score + topk")
        operands = self.dense_operands(query_embeddings, weights)
        term_weights = self.restrict(weights) if weights is not None and weights.nnz else None
        filters = Filters.build(self.size, None if forbid is None else self.restrict(forbid),
                                [self.restrict(g) for g in must_groups], must_needed, excluded, dead_rows)
        queries, jobs = operands if operands is not None else (None, None)
        return scan_topk(queries, jobs, term_weights, self.block_postings, self.job_terms, filters, k)
