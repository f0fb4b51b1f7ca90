"""Approximate dense candidates through faiss, for large catalogs.

faiss only proposes candidates here: every candidate is rescored exactly by the same
one-pass scoring as the exact mode, and tombstones, masks and rules are applied there,
so the faiss index never needs deletes or filters (which FAISS GPU indexes lack).
Small catalogs get HNSW (no training, high recall); large ones IVF with 4-bit codes
per dimension scanned by faiss's fast-scan kernels (fast to build, half the memory of
8-bit codes, 2-3x faster to search at the same recall once enough proposals are
rescored: bench/scan_choices.py). The search breadth (nprobe / efSearch) is
calibrated at build time to a target recall measured against exact search on a sample
of the catalog itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class AnnIndex:
    kind: str  # "hnsw" | "ivf"
    index: object
    breadth: int  # nprobe (ivf) or efSearch (hnsw)
    calibrated_recall: float

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Candidate rows (queries, k); -1 where faiss found fewer."""
        import faiss

        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.breadth)
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(self.breadth, k))
        _, rows = self.index.search(q, k, params=params)
        return rows


def proposal_scores(x: np.ndarray, queries: np.ndarray, proposals: np.ndarray) -> np.ndarray:
    """Each query's exact inner product with its own proposals (rows of x); -inf where
    faiss proposed nothing (-1). faiss's by-id kernel (what IndexRefine uses) reads the
    rows in place: a NumPy gather copies them first, and at 1,000 queries x 400
    proposals x d=128 took 137 ms against its 21 ms."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    proposals = np.ascontiguousarray(proposals, dtype=np.int64)
    if proposals.size and proposals.max() >= len(x):
        raise IndexError(f"proposal row {proposals.max()} is outside the {len(x)} vectors")
    scores = np.empty(proposals.shape, np.float32)
    faiss.fvec_inner_products_by_idx(faiss.swig_ptr(scores), faiss.swig_ptr(queries), faiss.swig_ptr(x),
                                     faiss.swig_ptr(proposals), x.shape[1], *proposals.shape)
    return scores


def choose_kind(n: int, hnsw_max: int) -> str:
    return "hnsw" if n <= hnsw_max else "ivf"


def build_ann(embeddings: np.ndarray, kind: str = "auto", *, hnsw_max: int = 50_000,
              target_recall: float = 0.95, k: int = 100, candidates_per_k: int = 4, seed: int = 0) -> AnnIndex:
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, d = x.shape
    if kind == "auto":
        kind = choose_kind(n, hnsw_max)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(x)
        ladder = [64, 128, 256, 512, 1024]
    elif kind == "ivf":
        nlist = max(16, int(4 * math.sqrt(n)))
        # 4-bit codes, one per dimension, scanned 32 at a time in SIMD registers (faiss's
        # fast scan). They rank roughly, so the index rescores candidates_per_k * k
        # proposals exactly. At 1M jobs, d=128, nprobe 96 and 400 proposals they reach
        # recall@100 0.976 in 0.17 s per 1,000 queries (rescoring included), where 8-bit
        # codes with 200 proposals need 0.35 s at nprobe 64 for 0.978 (bench/scan_choices.py)
        index = faiss.index_factory(d, f"IVF{nlist},PQ{d}x4fs", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = x[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
        index.train(train)
        index.add(x)
        ladder = [p for p in (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512) if p <= nlist] or [nlist]
    else:
        raise ValueError(f"unknown approximate index kind {kind!r}; expected 'auto', 'hnsw' or 'ivf'")
    ann = AnnIndex(kind, index, ladder[-1], float("nan"))
    _calibrate(ann, x, ladder, target_recall, k, candidates_per_k, seed)
    return ann


CALIBRATION_QUERIES = 256
CALIBRATION_MARGIN = 0.02  # the sample's recall is noisy: aim this much above target. With 0.01
# and 128 queries, 4-bit codes passed breadth 64 at 1M jobs, d=64, at 0.963; member queries got 0.957


def _calibrate(ann: AnnIndex, x: np.ndarray, ladder: list[int], target: float, k: int, candidates_per_k: int,
               seed: int) -> None:
    """Smallest breadth whose recall@k on perturbed catalog rows reaches `target` (+ margin),
    measured as the index uses faiss: candidates_per_k * k proposals, rescored exactly
    (compressed codes rank the proposals roughly; rescoring puts that right)."""
    n = len(x)
    k = min(k, n)
    rng = np.random.default_rng(seed + 1)
    sample = x[rng.choice(n, size=min(n, CALIBRATION_QUERIES), replace=False)]
    # Queries are not catalog rows: push them well off the points they came from. With
    # a nudge of half this size the calibration passed breadth 32 at 1M jobs, d=64, whose
    # recall on member queries was 0.942 (bench/retrieval.py); member vectors sit farther
    # from any one job than that.
    queries = sample + 1.0 * rng.standard_normal(sample.shape).astype(np.float32) * np.abs(sample).mean()
    truth = np.concatenate([np.argpartition(-(part @ x.T), k - 1, axis=1)[:, :k]  # 256 MB at a time at 1M jobs
                            for part in np.array_split(queries, max(1, len(queries) // 64))])
    for breadth in ladder:
        ann.breadth = breadth
        proposals = ann.search(queries, min(n, candidates_per_k * k))
        exact = proposal_scores(x, queries, proposals)
        found = np.take_along_axis(proposals, np.argsort(-exact, axis=1)[:, :k], axis=1)
        recall = np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)])
        ann.calibrated_recall = float(recall)
        if recall >= target + CALIBRATION_MARGIN:
            return
