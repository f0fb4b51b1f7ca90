"""serving.metrics agrees with scikit-learn on random inputs, ties included."""
import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from serving import metrics as M


@pytest.mark.parametrize("seed", range(20))
def test_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes present
    # rounding makes ties, which sklearn counts one half
    scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
    assert M.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_ndcg_matches_sklearn(seed, k):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 40))
    gains = rng.integers(0, 4, n).astype(float)
    gains[0] = 1.0  # at least one positive gain
    scores = np.round(rng.normal(size=n), int(rng.integers(0, 2)))
    ours = M.ndcg_at_k(scores, gains, k)
    theirs = ndcg_score([gains], [scores], k=k)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_undefined_cases_are_nan_not_errors():
    assert np.isnan(M.auc([0.1, 0.2], [1, 1]))
    assert np.isnan(M.ndcg_at_k([0.1, 0.2], [0, 0]))
    assert np.isnan(M.reciprocal_rank([0.1, 0.2], [0, 0]))
    assert np.isnan(M.recall_at_k(["a"], []))
    assert np.isnan(M.nanmean([float("nan")]))


def test_reciprocal_rank_recall_hit_rate_diversity_coverage():
    assert M.reciprocal_rank([0.9, 0.5, 0.7], [0, 1, 0]) == pytest.approx(1 / 3)
    assert M.reciprocal_rank([0.5, 0.5], [0, 1]) == pytest.approx(1 / 2)  # ties keep the given order
    assert M.recall_at_k(["a", "b", "c"], {"c", "z"}, k=2) == 0.0
    assert M.recall_at_k(["a", "b", "c"], {"c", "z"}) == 0.5
    assert M.hit_rate(["a", "b", "c", "d"], {"b"}) == 0.25
    assert M.distinct_share(["x", "x", "y", "z"]) == 0.75
    assert M.coverage([["a", "b"], ["b", "c"]], 6) == 0.5


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="differ in length"):
        M.auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="non-finite"):
        M.ndcg_at_k([0.1, float("nan")], [1, 0])
