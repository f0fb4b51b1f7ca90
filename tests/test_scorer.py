"""Scorers: baselines order what they should, the LM backend equals its own reference
path, and the factory's errors are clear."""
from __future__ import annotations

import numpy as np
import pytest

from serving.online.scorer import (
    BM25Scorer, Candidate, PopularityScorer, RankerScorer, RankJob, make_scorer, score_batch,
)
from streams.state import apply_member_event
from tests import factories as f


def member():
    return apply_member_event(None, f.member_upserted("u1"), lambda _: None)


CANDS = [
    Candidate(f.job("a", title="Pastry Chef", occupation="pastry chef", skills=["Baking"]), counts={"view": 50}),
    Candidate(f.job("b"), counts={"apply": 2, "click": 4}),
    Candidate(f.job("c", title="Data Analyst", occupation="data analyst", skills=["SQL"]), counts={"dismiss": 9}),
]


def test_popularity_orders_by_weighted_engagement():
    s = PopularityScorer().score(member(), CANDS, "apply", 0.0)
    assert list(np.argsort(-s)) == [1, 0, 2]  # dismisses count against a job


def test_bm25_prefers_the_job_that_matches_the_member():
    s = BM25Scorer().score(member(), CANDS, "apply", 0.0)
    assert s[1] > s[2] > s[0] == 0.0
    assert BM25Scorer().score(member(), [], "apply", 0.0).shape == (0,)


def test_factory_errors_are_clear():
    assert make_scorer("bm25").name == "bm25"
    with pytest.raises(ValueError, match="unknown scorer spec 'nope'"):
        make_scorer("nope")
    # the vLLM backend reads the checkpoint's prompts before it starts a server
    # (its own tests: tests/test_vllm.py)
    with pytest.raises(FileNotFoundError, match="no ranker checkpoint at artifacts/x"):
        make_scorer("vllm:artifacts/x")


def test_ranker_scorer_shares_one_prefix_and_matches_one_by_one():
    torch = pytest.importorskip("torch")
    from models.ranker import PromptBudget, Ranker, StudentConfig

    torch.set_num_threads(1)
    try:
        ranker = Ranker.student(StudentConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1),
                                budget=PromptBudget(max_prefix_tokens=200, max_segment_tokens=48))
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"no SmolLM2 tokenizer here: {err}")
    fast = RankerScorer(ranker, method="prefix_cache").score(member(), CANDS, "apply", 0.0)
    slow = RankerScorer(ranker, method="single").score(member(), CANDS, "apply", 0.0)
    assert fast.shape == (3,) and np.all((fast > 0) & (fast < 1))
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    # the replay asks every task in one pass: the same scores as one task at a time
    together = RankerScorer(ranker).score_tasks(member(), CANDS, ["click", "apply", "dismiss"], 0.0)
    for task in ("click", "apply", "dismiss"):
        np.testing.assert_allclose(together[task], RankerScorer(ranker).score(member(), CANDS, task, 0.0), atol=1e-5)
    assert not np.allclose(together["click"], together["dismiss"])
    # several members in one call (the serving batcher's): each as it scores alone
    other = apply_member_event(None, f.member_upserted("u2", member_id="m2", title="Pastry Chef",
                                                       occupation="pastry chef", skills=["Baking"]), lambda _: None)
    jobs = [RankJob(member(), CANDS, "apply", 0.0), RankJob(other, CANDS[::-1], "click", 0.0),
            RankJob(other, [], "apply", 0.0)]
    many = score_batch(RankerScorer(ranker), jobs)
    for job, got in zip(jobs, many):
        np.testing.assert_allclose(got, RankerScorer(ranker, method="single").score(
            job.member_state, job.candidates, job.task, 0.0), atol=1e-5)
    assert many[2].shape == (0,)
