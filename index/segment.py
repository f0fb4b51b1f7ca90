"""An immutable block of jobs and the one-pass scoring of a batch of queries over it.

A segment holds, for n jobs: their ids, an (n, d) embedding matrix and a term-major
CSR posting matrix (vocabulary x n, entries 1 where the job has the term). Scoring a
batch is one dense product (similarity), one sparse product (terms + learned links +
penalties, all folded into one weighted term matrix), then masks, then top-k.
Tombstones are not part of the segment: the index keeps them beside it, so deleting
never rewrites arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from index.topk import NEG_INF, topk
from index.xp import Backend


@dataclass(frozen=True)
class Segment:
    backend: Backend
    job_ids: np.ndarray  # (n,) object, host
    embeddings: Any  # (n, d) float32 on the backend
    postings: Any  # (n_terms, n) CSR float32 on the backend; row t = jobs having term t
    job_terms: sp.csr_matrix  # (n, n_terms) host, the same matrix job-major: explanations
    embeddings_host: np.ndarray  # (n, d) float32, host copy kept for compaction and faiss
    ann: Any = None  # faiss candidate generator (approximate mode, main segment only)

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {j: i for i, j in enumerate(self.job_ids.tolist())}

    @property
    def size(self) -> int:
        return len(self.job_ids)

    @property
    def n_terms(self) -> int:
        return self.job_terms.shape[1]

    @classmethod
    def build(cls, backend: Backend, job_ids: list[str] | np.ndarray, embeddings: np.ndarray,
              job_terms: sp.csr_matrix) -> "Segment":
        ids = np.asarray(job_ids, dtype=object)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(ids) or job_terms.shape[0] != len(ids):
            raise ValueError(
                f"segment parts disagree: {len(ids)} ids, embeddings {emb.shape}, terms {job_terms.shape}")
        job_terms = sp.csr_matrix(job_terms, dtype=np.float32)
        postings_host = job_terms.T.tocsr()
        postings_host.sort_indices()
        return cls(
            backend=backend,
            job_ids=ids,
            embeddings=backend.asarray(emb),
            postings=backend.sparse.csr_matrix(postings_host) if backend.name != "numpy" else postings_host,
            job_terms=job_terms,
            embeddings_host=emb,
        )

    @classmethod
    def empty(cls, backend: Backend, dim: int, n_terms: int = 0) -> "Segment":
        return cls.build(backend, [], np.zeros((0, dim), np.float32), sp.csr_matrix((0, n_terms), dtype=np.float32))

    def take(self, rows: np.ndarray) -> "Segment":
        """The sub-segment of the given rows (approximate mode rescoring)."""
        return Segment.build(self.backend, self.job_ids[rows], self.embeddings_host[rows], self.job_terms[rows])

    # ---- scoring -------------------------------------------------------------------

    def restrict(self, term_matrix: sp.csr_matrix) -> Any:
        """A host (queries x vocabulary) CSR cut to this segment's columns, on the backend.

        Terms newer than the segment match none of its jobs, so dropping them is exact."""
        cut = term_matrix[:, : self.n_terms] if term_matrix.shape[1] > self.n_terms else term_matrix
        if cut.shape[1] < self.n_terms:
            cut = sp.csr_matrix((cut.data, cut.indices, cut.indptr), shape=(cut.shape[0], self.n_terms))
        if self.backend.name == "numpy":
            return cut
        return self.backend.sparse.csr_matrix(cut)

    def add_term_scores(self, scores: Any, term_matrix: sp.csr_matrix) -> None:
        """scores += W @ postings — the inverted-index pass: work ~ the postings touched."""
        if term_matrix.nnz == 0 or self.size == 0:
            return
        hit = (self.restrict(term_matrix) @ self.postings).tocoo()
        # a product's entries are unique per (row, col): plain fancy add is exact
        scores[hit.row, hit.col] += hit.data

    def mask_terms(self, scores: Any, term_matrix: sp.csr_matrix) -> None:
        """-inf wherever a job has any of the query's forbidden terms."""
        if term_matrix.nnz == 0 or self.size == 0:
            return
        hit = (self.restrict(term_matrix) @ self.postings).tocoo()
        scores[hit.row, hit.col] = NEG_INF

    def require_terms(self, scores: Any, groups: list[sp.csr_matrix], needed: np.ndarray) -> None:
        """Keep a job for query i only if it has a term from each of i's `needed[i]` groups."""
        xp = self.backend.xp
        if not groups or self.size == 0:
            return
        met = xp.zeros(scores.shape, dtype=xp.int8)
        for group in groups:
            hit = (self.restrict(group) @ self.postings).tocoo()
            met[hit.row, hit.col] += 1
        need = self.backend.asarray(needed.astype(np.int8))
        scores[met < need[:, None]] = NEG_INF

    def score(self, query_embeddings: Any | None, weights: sp.csr_matrix | None,
              forbid: sp.csr_matrix | None, must_groups: list[sp.csr_matrix], must_needed: np.ndarray,
              dead_rows: Any, excluded: tuple[np.ndarray, np.ndarray]) -> Any:
        """Fused scores (queries, n) for this segment, every mask applied."""
        xp = self.backend.xp
        rows = len(must_needed)
        if query_embeddings is not None:
            scores = query_embeddings @ self.embeddings.T
        else:
            scores = xp.zeros((rows, self.size), dtype=xp.float32)
        if weights is not None:
            self.add_term_scores(scores, weights)
        if forbid is not None:
            self.mask_terms(scores, forbid)
        self.require_terms(scores, must_groups, must_needed)
        if dead_rows is not None and len(dead_rows):
            scores[:, dead_rows] = NEG_INF
        q_idx, job_rows = excluded
        if len(q_idx):
            scores[self.backend.asarray(q_idx), self.backend.asarray(job_rows)] = NEG_INF
        return scores

    def search(self, k: int, **score_args: Any) -> tuple[np.ndarray, np.ndarray]:
        """Host (values, rows), each (queries, k'), best first; -inf marks no result."""
        scores = self.score(**score_args)
        values, cols = topk(self.backend.xp, scores, k)
        return self.backend.to_host(values), self.backend.to_host(cols)
