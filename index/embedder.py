"""Dense embeddings of jobs and members behind one interface.

`HashedTermEmbedder` is the first embedder: a random projection of the weighted
term vector (each term gets a fixed pseudo-random Gaussian direction derived from a
hash of its text, so every process agrees without sharing state). The PLM4Job encoder
replaces it later by implementing the same `Embedder` protocol.
"""
from __future__ import annotations

import hashlib
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import scipy.sparse as sp

from index.records import JobRecord, MemberRecord
from index.terms import job_terms, location_term, member_attributes, title_tokens


@runtime_checkable
class Embedder(Protocol):
    dim: int

    def embed_jobs(self, jobs: Sequence[JobRecord]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized."""
        ...

    def embed_members(self, members: Sequence[MemberRecord]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized, in the same space as the jobs."""
        ...


# How much each field pulls a job's direction; the company says little about fit.
FIELD_WEIGHTS = {"occ": 2.0, "title": 1.0, "skill": 1.0, "sen": 0.5, "loc": 0.5, "co": 0.0, "flag": 0.0,
                 "text": 0.5}


def _field(term: str) -> str:
    return term.split(":", 1)[0]


class HashedTermEmbedder:
    def __init__(self, dim: int = 64, seed: int = 0):
        if dim <= 0:
            raise ValueError(f"embedding dim must be positive, got {dim}")
        self.dim = dim
        self.seed = seed
        self._directions: dict[str, np.ndarray] = {}

    def direction(self, term: str) -> np.ndarray:
        v = self._directions.get(term)
        if v is None:
            # free-text words point where the same title word points
            key = "title:" + term[5:] if term.startswith("text:") else term
            digest = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            v = rng.standard_normal(self.dim).astype(np.float32) / np.sqrt(self.dim)
            self._directions[term] = v
        return v

    def _embed_term_lists(self, term_lists: Sequence[Sequence[str]]) -> np.ndarray:
        index: dict[str, int] = {}
        rows, cols, vals = [], [], []
        for i, terms in enumerate(term_lists):
            for t in terms:
                w = FIELD_WEIGHTS.get(_field(t), 1.0)
                if w:
                    rows.append(i)
                    cols.append(index.setdefault(t, len(index)))
                    vals.append(w)
        n = len(term_lists)
        if not index:
            return np.zeros((n, self.dim), np.float32)
        weights = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, len(index)))
        directions = np.stack([self.direction(t) for t in index])  # dict order == column order
        out = np.asarray(weights @ directions, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_jobs(self, jobs: Sequence[JobRecord]) -> np.ndarray:
        return self._embed_term_lists([job_terms(j) for j in jobs])

    def embed_members(self, members: Sequence[MemberRecord]) -> np.ndarray:
        """Profile terms, plus the words of the member's free text. A word shares its
        direction with the same word in job titles ("looking to move into nursing roles"
        points toward nursing titles), at a lower weight: the one signal here that the
        structured term query does not already carry."""
        return self._embed_term_lists(
            [member_attributes(m) + ((location_term(m.location),) if m.location else ()) + about_terms(m.about)
             for m in members]
        )


def about_terms(about: str) -> tuple[str, ...]:
    return tuple(f"text:{t}" for t in dict.fromkeys(title_tokens(about)))
