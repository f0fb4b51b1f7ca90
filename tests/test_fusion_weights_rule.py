"""bench/retrieval_quality.py's rule for the hybrid's fusion weights: the setting whose
worse kind of target gains the most recall over the best single method, each kind
counted by its own number of validation targets."""
from __future__ import annotations

from bench import retrieval_quality as RQ
from tests.test_held_out import bench_args


def validation(settings: dict[int, tuple[int, int]]) -> dict:
    """Validation hits of the single methods and of some grid settings: 1,000 applies, 100 hires."""
    tuning = {(RQ.VALIDATION_TARGETS, "apply"): 1000, (RQ.VALIDATION_TARGETS, "hire"): 100,
              ("term only", "apply"): 700, ("term only", "hire"): 60,
              ("dense only", "apply"): 650, ("dense only", "hire"): 70,
              ("links only", "apply"): 500, ("links only", "hire"): 80}
    for g, (applies, hires) in settings.items():
        tuning[(g, "apply")], tuning[(g, "hire")] = applies, hires
    return tuning


def test_the_worse_kind_decides_in_recall_not_in_hits():
    # 0: most hits (what the rule before 2026-12-06 took), hires +5 of 100 (+0.05)
    # 1: the largest gain in hits on its worse kind (+8 hires), applies only +0.03
    # 2: worse kind +0.06 (applies +60 of 1,000; hires +7 of 100 = +0.07): the rule's pick
    tuning = validation({0: (800, 85), 1: (730, 88), 2: (760, 87)})
    assert RQ.choose_weights(tuning) == RQ.GRID[2]


def test_a_setting_that_trails_a_single_method_loses_to_one_that_beats_them_all():
    tuning = validation({0: (900, 79), 5: (710, 81)})  # 0: many more hits, but fewer hires than links alone
    assert RQ.choose_weights(tuning) == RQ.GRID[5]


def test_the_link_arms_choose_only_among_their_own_settings():
    with_links = next(g for g, w in enumerate(RQ.GRID) if w["link"] > 0)
    without = next(g for g, w in enumerate(RQ.GRID) if w["link"] == 0)
    tuning = validation({with_links: (760, 87), without: (720, 82)})
    assert RQ.choose_weights(tuning, links=True) == RQ.GRID[with_links]
    assert RQ.choose_weights(tuning, links=False) == RQ.GRID[without]


def test_the_replay_counts_each_kinds_validation_targets_and_pools_them_over_seeds():
    runs = [RQ.run(bench_args(seed=seed, members=400, jobs=300, days=8, train_days=6, val_days=3))  # hires among them
            for seed in (1, 2)]
    per_seed = [{(g, kind): hits for g, kind, hits in r["tuning"]} for r in runs]
    tuning = {(g, kind): hits for g, kind, hits in RQ.pool(runs)["tuning"]}
    assert tuning == {key: per_seed[0].get(key, 0) + per_seed[1].get(key, 0) for key in {*per_seed[0], *per_seed[1]}}
    assert RQ.frozen_weights(runs)["hybrid"] == RQ.choose_weights(tuning)  # what the held-out columns run with
    for kind in ("apply", "hire"):
        targets = tuning[(RQ.VALIDATION_TARGETS, kind)]
        assert targets > 0
        # no setting or method finds more targets than there are
        assert max(h for (g, k), h in tuning.items() if k == kind and g != RQ.VALIDATION_TARGETS) <= targets
