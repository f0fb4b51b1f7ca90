"""The held-out marketplace (streams/simulator/held_out.py) is never tuned on: tuning
paths refuse it at run time, and only the listed files may name it."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

from bench import retrieval_quality as RQ
from models import encoder_training
from streams.schemas import serialize
from streams.simulator import Marketplace, MarketplaceConfig
from streams.simulator.held_out import (
    HELD_OUT_MARKETPLACE, READERS, REPLICATION_SEEDS, HeldOutTuningError, refuse_tuning,
)

REPO = Path(__file__).resolve().parent.parent
# A held-out-flagged marketplace small enough to replay in a few seconds.
TINY_HELD_OUT = dataclasses.replace(HELD_OUT_MARKETPLACE.config, n_members=150, n_companies=10, n_jobs=200, days=6)


def bench_args(**kw) -> argparse.Namespace:
    base = dict(seed=1, members=150, companies=10, jobs=200, days=6, train_days=4, val_days=2, dense="hashed",
                encoder_steps=1, refit=False, dim=16, min_support=1, apply_window_days=7.0, ks="100",
                career_move_share=0.25, community_strength=1.0)
    return argparse.Namespace(**{**base, **kw})


def test_tuning_refuses_the_held_out_marketplace_and_its_copies():
    with pytest.raises(HeldOutTuningError, match="held-out marketplace"):
        refuse_tuning(HELD_OUT_MARKETPLACE.config, "fusion weights")
    with pytest.raises(HeldOutTuningError):
        refuse_tuning(TINY_HELD_OUT, "fusion weights")  # dataclasses.replace keeps the flag
    refuse_tuning(MarketplaceConfig(), "fusion weights")  # a tuning marketplace is fine
    for seed in (HELD_OUT_MARKETPLACE.config.seed, *REPLICATION_SEEDS):  # every held-out seed, at any size
        with pytest.raises(HeldOutTuningError):
            refuse_tuning(MarketplaceConfig(seed=seed), "fusion weights")


def test_replications_are_held_out_and_differ_only_in_their_seed():
    declared = HELD_OUT_MARKETPLACE.config
    assert declared.seed not in REPLICATION_SEEDS and len(set(REPLICATION_SEEDS)) == len(REPLICATION_SEEDS)
    for seed in REPLICATION_SEEDS:
        replica = HELD_OUT_MARKETPLACE.replication(seed)
        with pytest.raises(HeldOutTuningError):
            refuse_tuning(replica.config, "fusion weights")
        assert replica.config.seed == seed and replica.train_days == HELD_OUT_MARKETPLACE.train_days
        assert dataclasses.replace(replica.config, seed=declared.seed) == declared


def test_the_retrieval_bench_runs_only_declared_replications():
    """`--replication-seeds` names the fresh draws a judgement uses; a seed that is not a
    declared replication would be labelled held out without being one, so it is refused."""
    assert RQ.replication_seeds(f"{REPLICATION_SEEDS[-1]},{REPLICATION_SEEDS[0]}") == (REPLICATION_SEEDS[-1],
                                                                                        REPLICATION_SEEDS[0])
    with pytest.raises(argparse.ArgumentTypeError, match="not declared replications"):
        RQ.replication_seeds(f"{REPLICATION_SEEDS[0]},7")


def test_the_held_out_flag_changes_no_byte_of_the_run():
    plain = dataclasses.replace(TINY_HELD_OUT, held_out=False, days=2)
    flagged = dataclasses.replace(plain, held_out=True)
    assert [serialize(e) for e in Marketplace(flagged).events()] == [serialize(e) for e in Marketplace(plain).events()]


def test_the_retrieval_bench_tunes_nothing_on_the_held_out_marketplace(monkeypatch):
    with pytest.raises(HeldOutTuningError):  # asked to tune on it: refused before any work
        RQ.run(bench_args(), TINY_HELD_OUT)

    def tripwire(*a, **kw):
        raise AssertionError("a tuning path ran on the held-out marketplace")

    monkeypatch.setattr(RQ, "tune_day", tripwire)
    monkeypatch.setattr(RQ, "choose_weights", tripwire)
    frozen = {"hybrid": {"dense": 1.0, "term": 1.0, "link": 0.3},
              "hybrid with links": {"dense": 1.0, "term": 1.0, "link": 0.3},
              "hybrid without links": {"dense": 1.0, "term": 1.0, "link": 0.0}}
    out = RQ.run(bench_args(), TINY_HELD_OUT, frozen_weights=frozen)
    assert out["config"]["held_out"] and out["tuning"] == []
    assert out["tuned_weights"] == frozen["hybrid"] and out["targets"].get("apply", 0) > 0


def test_only_the_listed_files_name_the_held_out_marketplace():
    """A tuning module that imports or names the declaration fails here, before it can
    read it; the tuning functions themselves never mention a held-out marketplace."""
    naming = sorted(str(p.relative_to(REPO)) for folder in ("bench", "index", "infra", "models", "serving",
                                                             "streams", "tests")
                    for p in (REPO / folder).rglob("*.py") if "HELD_OUT_MARKETPLACE" in p.read_text(encoding="utf-8"))
    assert set(naming) <= set(READERS), set(naming) - set(READERS)
    for fn in (RQ.tune_day, RQ.choose_weights, RQ.train_plm4job, RQ.plm4job_embedder,
               encoder_training.train_link_prediction):
        assert "held_out" not in inspect.getsource(fn).lower().replace("held-out", ""), fn.__name__


def test_the_ranker_quality_bench_chooses_nothing_on_the_held_out_marketplace():
    """Its LRs' regularization is the one thing the ranker bench chooses per marketplace:
    on the held-out one it must come from the tuning marketplaces, or the bench refuses."""
    from bench import ranker_quality as Q
    from serving.training.ranker_pipeline import split_marketplace

    truth = Q.RequestTruth(0.0)
    split = split_marketplace(TINY_HELD_OUT, held_out_days=2, progress=False, on_event=truth.watch)
    market = Q.Market(TINY_HELD_OUT.seed, split.description, Q.by_task(split.train), Q.by_task(split.held_out),
                      truth, split.config)
    with pytest.raises(HeldOutTuningError, match="regularization"):
        Q.BaselineRun.fit(market).scores()
    frozen = {(task, text): 0.3 for task in market.train for text in (False, True)}
    run = Q.BaselineRun.fit(market, frozen)
    scores = run.scores()
    assert len(scores[Q.REFERENCE]["click"]) == len(market.held["click"]) and run.chosen_c == frozen


def test_the_held_out_marketplace_takes_the_median_of_the_tuning_choices():
    from bench import ranker_quality as Q

    runs = [argparse.Namespace(chosen_c={("click", True): c, ("apply", True): 1.0}) for c in (0.03, 1.0, 0.3)]
    assert Q.frozen_choices(runs) == {("click", True): 0.3, ("apply", True): 1.0}
