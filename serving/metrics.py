"""Ranking and retrieval metrics: plain numpy, deterministic, no hidden state.

Every function takes scores and labels of one ranked list (or pooled impressions for
AUC) and returns a float. Ties are treated the way scikit-learn treats them, so the
numbers agree with `roc_auc_score` (ties count one half) and `ndcg_score` (tied
scores share their gains evenly), which the tests check on random inputs.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite values: {a[~np.isfinite(a)][:5]}")
    return a


def _check_pair(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s, y = _as_1d(scores, "scores"), _as_1d(labels, "labels")
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in length")
    return s, y


def auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    NaN when only one class is present: there is nothing to order."""
    s, y = _check_pair(scores, labels)
    pos = y > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average rank of each run of equal scores (1-based)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _tie_averaged_dcg(scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    """DCG@k where tied scores share the average gain of their group (sklearn's way)."""
    order = np.argsort(-scores, kind="mergesort")
    s, g = scores[order], gains[order]
    discount = 1.0 / np.log2(np.arange(len(s)) + 2.0)
    discount[k:] = 0.0
    group = np.r_[0, np.cumsum(np.diff(s) != 0)]  # runs of equal scores
    size = np.bincount(group)
    mean_gain = np.bincount(group, weights=g) / size
    return float((mean_gain * np.bincount(group, weights=discount)).sum())


def ndcg_at_k(scores: Sequence[float], labels: Sequence[float], k: int = 10) -> float:
    """NDCG@k of one list with graded (or binary) gains; NaN when no gain is positive."""
    s, y = _check_pair(scores, labels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ideal = np.sort(y)[::-1]
    idcg = float((ideal[:k] / np.log2(np.arange(min(k, len(y))) + 2.0)).sum())
    if idcg <= 0:
        return float("nan")
    return _tie_averaged_dcg(s, y, k) / idcg


def reciprocal_rank(scores: Sequence[float], labels: Sequence[float]) -> float:
    """1 / rank of the first positive, ranking by score with ties broken by position
    (the order the candidates came in); NaN when no label is positive."""
    s, y = _check_pair(scores, labels)
    if not np.any(y > 0):
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    first = int(np.flatnonzero(y[order] > 0)[0])
    return 1.0 / (first + 1)


def recall_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int | None = None) -> float:
    """Share of the relevant ids among the first k retrieved; NaN when none is relevant."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    top = list(retrieved)[: k if k is not None else None]
    return len(rel.intersection(top)) / len(rel)


def hit_rate(shown: Sequence[str], outcome: Iterable[str]) -> float:
    """Share of the shown slots whose job had the outcome (apply rate / hire rate in top k)."""
    shown = list(shown)
    if not shown:
        return float("nan")
    out = set(outcome)
    return sum(j in out for j in shown) / len(shown)


def distinct_share(values: Sequence[str]) -> float:
    """Intra-list diversity: distinct values over list length (1.0 = all different)."""
    values = list(values)
    return len(set(values)) / len(values) if values else float("nan")


def coverage(shown_lists: Iterable[Sequence[str]], catalog_size: int) -> float:
    """Share of the catalog that appeared in at least one list."""
    if catalog_size <= 0:
        return float("nan")
    seen: set[str] = set()
    for lst in shown_lists:
        seen.update(lst)
    return len(seen) / catalog_size


def nanmean(values: Iterable[float]) -> float:
    """Mean of the defined values; NaN (not a warning) when there are none."""
    a = np.asarray([v for v in values if v == v], dtype=np.float64)
    return float(a.mean()) if a.size else float("nan")


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(a, q)) for q in qs}
