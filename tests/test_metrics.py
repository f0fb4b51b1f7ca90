"""serving.evaluation.metrics agrees with scikit-learn on random inputs, ties included."""
import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from serving.evaluation import metrics as M


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


# ---- AUC standard errors -------------------------------------------------------------


def test_delong_on_a_hand_example():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1, 0 | 1, 1 -> AUC 3/4
    # placements: positives (1+0)/2, (1+1)/2; negatives 2/2, 1/2; each has sample variance 1/8
    # DeLong variance = 1/8 / 2 + 1/8 / 2 = 1/8
    v10, v01 = M.auc_placements([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert v10.tolist() == [0.5, 1.0] and v01.tolist() == [1.0, 0.5]
    a, se = M.auc_se([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert a == pytest.approx(0.75) and se == pytest.approx(np.sqrt(1 / 8))


def test_delong_ties_count_one_half():
    # the positive at 0.4 ties the negative at 0.4: placements 0.5 and 1.0
    v10, v01 = M.auc_placements([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1])
    assert v10.tolist() == [0.75, 1.0] and v01.tolist() == [1.0, 0.75]


@pytest.mark.parametrize("seed", range(5))
def test_placements_match_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=60) + y, 1)  # ties included
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = M.auc_placements(s, y)
    np.testing.assert_allclose(v10, psi.mean(axis=1))
    np.testing.assert_allclose(v01, psi.mean(axis=0))
    assert v10.mean() == pytest.approx(M.auc(s, y))


def _bootstrap_var(s, y, rng, reps=1500, groups=None):
    aucs = []
    if groups is None:
        for _ in range(reps):
            i = rng.integers(0, len(y), len(y))
            aucs.append(M.auc(s[i], y[i]))
    else:
        members = np.unique(groups)
        rows = {g: np.flatnonzero(groups == g) for g in members}
        for _ in range(reps):
            i = np.concatenate([rows[g] for g in rng.choice(members, len(members))])
            aucs.append(M.auc(s[i], y[i]))
    return np.nanvar(aucs)


@pytest.mark.parametrize("seed", range(3))
def test_delong_variance_agrees_with_bootstrap(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.2).astype(int)
    s = rng.normal(size=500) + 0.8 * y
    _, se = M.auc_se(s, y)
    assert se ** 2 == pytest.approx(_bootstrap_var(s, y, rng), rel=0.2)


def test_clustered_se_agrees_with_cluster_bootstrap_and_exceeds_naive():
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(80), 10)
    taste = 1.5 * rng.normal(size=80)[groups]  # a member effect shared by their candidates
    y = (rng.random(800) < 1 / (1 + np.exp(-(taste - 1.5)))).astype(int)
    s = taste + rng.normal(size=800)
    _, naive = M.auc_se(s, y)
    _, clustered = M.auc_se(s, y, clusters=groups)
    assert clustered > 1.2 * naive
    assert clustered ** 2 == pytest.approx(_bootstrap_var(s, y, rng, groups=groups), rel=0.25)


def test_singleton_clusters_reduce_to_delong():
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.3).astype(int)
    s = rng.normal(size=400) + y
    _, delong = M.auc_se(s, y)
    _, single = M.auc_se(s, y, clusters=np.arange(400))
    assert single == pytest.approx(delong, rel=0.01)


def test_paired_covariance_of_a_scorer_with_itself_and_a_ratio():
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.3).astype(int)
    s = rng.normal(size=300) + y
    aucs, cov = M.auc_covariance([s, s, -s], y)
    assert aucs[0] == aucs[1] == pytest.approx(1 - aucs[2])
    assert cov[0, 1] == pytest.approx(cov[0, 0]) and cov[0, 2] == pytest.approx(-cov[0, 0])
    ratio, se = M.excess_auc_ratio(aucs, cov, num=1, den=0)
    assert ratio == pytest.approx(1.0) and se == pytest.approx(0.0, abs=1e-9)
    # independent numerator and denominator: the textbook delta method
    a, c = np.array([0.7, 0.6]), np.diag([0.01 ** 2, 0.02 ** 2])
    ratio, se = M.excess_auc_ratio(a, c, num=1, den=0)
    assert ratio == pytest.approx(0.5)
    assert se == pytest.approx(0.5 * np.sqrt((0.02 / 0.1) ** 2 + (0.01 / 0.2) ** 2))


def test_auc_se_undefined_is_nan():
    a, se = M.auc_se([0.1, 0.2], [1, 1])
    assert np.isnan(a) and np.isnan(se)
    _, se = M.auc_se([0.1, 0.2, 0.3], [0, 1, 0], clusters=["a", "a", "a"])
    assert np.isnan(se)
