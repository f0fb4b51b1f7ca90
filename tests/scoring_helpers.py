"""Scorers and an engine for testing the scoring service without a broker."""
from __future__ import annotations

import threading

import numpy as np

from serving.online.engine import EngineConfig, MatchingEngine
from serving.online.scorer import BM25Scorer
from tests import factories as f

MEMBERS = ("m1", "m2", "m3", "m4", "m5")


def engine(scorer, retrieve_k: int = 100) -> MatchingEngine:
    """Six jobs and five members with profiles, folded as the replica would."""
    e = MatchingEngine(scorer, EngineConfig(retrieve_k=retrieve_k))
    e.apply_all([
        f.job_posted("p1", 0, job_id="j1"),
        f.job_posted("p2", 0, job_id="j2", company_id="c2", company_name="Globex"),
        f.job_posted("p3", 0, job_id="j3", title="Pastry Chef", occupation="pastry chef", skills=["Baking"]),
        f.job_posted("p4", 0, job_id="j4", title="Data Analyst", occupation="data analyst", skills=["SQL"]),
        f.job_posted("p5", 0, job_id="j5", title="Kafka Engineer", occupation="data engineer", skills=["Kafka"]),
        f.job_posted("p6", 0, job_id="j6", title="Nurse", occupation="nurse", skills=["Triage"]),
    ])
    e.apply_all(f.member_upserted(f"u-{m}", 0, member_id=m) for m in MEMBERS)
    e.retrieve(e.member(MEMBERS[0]))  # the scan's first call compiles (numba): not inside a deadline
    return e


class RecordingScorer(BM25Scorer):
    """BM25 with a batch call that records which members each model call held."""

    def __init__(self, fail_for: str | None = None):
        super().__init__()
        self.calls: list[list[str]] = []
        self.fail_for = fail_for

    def score_batch(self, jobs):
        self.calls.append([j.member_state.member_id for j in jobs])
        if any(j.member_state.member_id == self.fail_for for j in jobs):
            raise ValueError(f"cannot score member {self.fail_for}")
        return [self.score(j.member_state, j.candidates, j.task, j.now, j.query) for j in jobs]


class GatedScorer(RecordingScorer):
    """Holds every model call until the test opens the gate: a model as slow as the
    test needs, without timing anything."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def score_batch(self, jobs):
        self.entered.set()
        if not self.gate.wait(60):
            raise RuntimeError("the test never opened the gate")
        return super().score_batch(jobs)


def item_ids(result) -> list[str]:
    return [it.job_id for it in result.items]


def retrieval_order(e: MatchingEngine, member_id: str, k: int) -> list[str]:
    cands, _ = e.retrieve(e.member(member_id))
    order = np.argsort(-np.asarray([c.retrieval_score for c in cands]), kind="stable")[:k]
    return [cands[i].job.job_id for i in order]


def tiny_lm_scorer(name: str = "tiny"):
    """A RankerScorer over a one-block, untrained LM (SmolLM2's tokenizer, random
    weights): the real scoring code at a size a test can afford. Skips where the
    tokenizer is absent."""
    import pytest
    import torch

    from models.ranker import Ranker, StudentConfig
    from serving.online.scorer import RankerScorer

    torch.set_num_threads(1)
    try:
        ranker = Ranker.student(StudentConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1))
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"no SmolLM2 tokenizer here: {err}")
    return RankerScorer(ranker, name=name)
