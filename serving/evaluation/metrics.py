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


# ---- AUC with its uncertainty ------------------------------------------------------------
#
# DeLong, DeLong & Clarke-Pearson (1988): each positive's and each negative's share of
# the pairs it wins (its "placement") has the AUC as its mean, and the AUC's variance
# follows from the placements' spread. Several scorers on the same examples share the
# placements' pairing, which gives their covariance, hence the standard error of a
# difference (paired), not just of each AUC. Candidates of one member are not
# independent (one member's slates share a taste), so `clusters` switches to
# Obuchowski (1997): placements are summed per cluster, and clusters are the units.


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def auc_placements(scores: Sequence[float], labels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive, the share of negatives it
    outscores (ties one half); for each negative, the share of positives that outscore it.
    Both have the AUC as their mean."""
    s, y = _check_pair(scores, labels)
    pos = y > 0
    m, n = int(pos.sum()), int((~pos).sum())
    if m == 0 or n == 0:
        raise ValueError(f"placements need both classes, got {m} positives and {n} negatives")
    overall = _midranks(s)
    v10 = (overall[pos] - _midranks(s[pos])) / n
    v01 = 1.0 - (overall[~pos] - _midranks(s[~pos])) / m
    return v10, v01


def auc_covariance(score_columns: Sequence[Sequence[float]], labels: Sequence[float],
                   clusters: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of k scorers on the same examples and their k x k covariance.

    Without `clusters`: DeLong's estimator (S10/m + S01/n). With `clusters` (one id per
    example, e.g. the member): Obuchowski's, I/(I-1) * sum over clusters of z z^T, where
    z = (sum of the cluster's positive placements - m_c AUC)/M + (same for negatives)/N.
    NaNs when a class is missing (or fewer than two clusters).
    """
    y = _as_1d(labels, "labels")
    cols = [_check_pair(s, y)[0] for s in score_columns]
    k = len(cols)
    pos = y > 0
    if not cols or pos.all() or not pos.any():
        return np.full(k, np.nan), np.full((k, k), np.nan)
    parts = [auc_placements(s, y) for s in cols]
    v10 = np.stack([p[0] for p in parts], axis=1)  # positives x k
    v01 = np.stack([p[1] for p in parts], axis=1)  # negatives x k
    aucs = v10.mean(axis=0)
    if clusters is None:
        return aucs, _delong_cov(v10, v01)
    return aucs, _clustered_cov(v10, v01, aucs, pos, np.asarray(clusters))


def _delong_cov(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    m, n = len(v10), len(v01)
    if m < 2 or n < 2:
        return np.full((v10.shape[1],) * 2, np.nan)
    return np.atleast_2d(np.cov(v10, rowvar=False)) / m + np.atleast_2d(np.cov(v01, rowvar=False)) / n


def _clustered_cov(v10, v01, aucs, pos, clusters) -> np.ndarray:
    if len(clusters) != len(pos):
        raise ValueError(f"clusters ({len(clusters)}) and labels ({len(pos)}) differ in length")
    _, cid = np.unique(clusters, return_inverse=True)
    n_clusters = int(cid.max()) + 1
    if n_clusters < 2:
        return np.full((len(aucs),) * 2, np.nan)
    m, n = len(v10), len(v01)

    def per_cluster(values, ids):  # sums of placements and counts, per cluster
        sums = np.stack([np.bincount(ids, weights=c, minlength=n_clusters) for c in values.T], axis=1)
        return sums, np.bincount(ids, minlength=n_clusters)[:, None]

    s10, m_c = per_cluster(v10, cid[pos])
    s01, n_c = per_cluster(v01, cid[~pos])
    z = (s10 - m_c * aucs) / m + (s01 - n_c * aucs) / n
    return n_clusters / (n_clusters - 1) * (z.T @ z)


def auc_se(scores: Sequence[float], labels: Sequence[float], clusters: Sequence | None = None) -> tuple[float, float]:
    """(AUC, its standard error): DeLong, or Obuchowski's clustered DeLong with `clusters`."""
    aucs, cov = auc_covariance([scores], labels, clusters)
    return float(aucs[0]), float(np.sqrt(cov[0, 0]))


def excess_auc_ratio(aucs: Sequence[float], cov, num: int = 1, den: int = 0) -> tuple[float, float]:
    """(AUC_num - 0.5) / (AUC_den - 0.5), e.g. how much of a model's lift over chance a
    zero-shot prompt keeps, with its delta-method standard error from the paired
    covariance (`auc_covariance`)."""
    a = np.asarray(aucs, dtype=np.float64) - 0.5
    c = np.asarray(cov, dtype=np.float64)
    if a[den] == 0:
        return float("nan"), float("nan")
    ratio = a[num] / a[den]
    grad = np.zeros(len(a))
    grad[num], grad[den] = 1.0 / a[den], -ratio / a[den]
    return float(ratio), float(np.sqrt(max(grad @ c @ grad, 0.0)))
