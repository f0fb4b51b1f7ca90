"""Test helpers for index/: random catalogs and a brute-force reference search.

The reference re-derives the fused score from its definition (index/query.py's
docstring) one job at a time in plain Python, sharing no scoring code with the index.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from index.query import Query
from index.records import SENIORITY_LEVELS, JobRecord
from index.terms import job_terms
from index.xp import cupy_usable

CUPY_OK, CUPY_WHY = cupy_usable()
# The array backends a behaviour test runs on: NumPy always, CuPy where a CUDA device
# answers (skipped with the reason otherwise), so the GPU run checks the same behaviour.
BACKENDS = [
    pytest.param("numpy"),
    pytest.param("cupy", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not CUPY_OK, reason=f"CuPy search needs a CUDA device: {CUPY_WHY}")]),
]

TITLE_WORDS = ["software", "data", "senior", "nurse", "engineer", "analyst", "manager", "sales", "chef", "teacher"]
OCCUPATIONS = ["software developers", "registered nurses", "data scientists", "chefs", "sales managers"]
SKILLS = [f"skill{i}" for i in range(30)]
LOCATIONS = ["berlin", "paris", "madrid", "rome"]


def random_job(rng: random.Random, job_id: str) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        title=" ".join(rng.sample(TITLE_WORDS, rng.randint(1, 3))),
        location=rng.choice(LOCATIONS),
        seniority=rng.choice(SENIORITY_LEVELS),
        company_id=f"c{rng.randrange(8)}",
        occupation=rng.choice(OCCUPATIONS),
        skills=tuple(rng.sample(SKILLS, rng.randint(0, 5))),
        promoted=rng.random() < 0.3,
    )


def random_catalog(seed: int, n: int, dim: int) -> tuple[list[JobRecord], np.ndarray]:
    rng = random.Random(seed)
    jobs = [random_job(rng, f"j{i}") for i in range(n)]
    emb = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return jobs, emb


def random_query(rng: random.Random, dim: int, job_ids: list[str], rich: bool = True) -> Query:
    vocab = ([f"title:{w}" for w in TITLE_WORDS] + [f"occ:{o}" for o in OCCUPATIONS]
             + [f"skill:{s}" for s in SKILLS] + [f"loc:{l}" for l in LOCATIONS]
             + [f"sen:{s}" for s in SENIORITY_LEVELS] + ["skill:never-indexed"])
    terms = {t: rng.uniform(0.2, 2.0) for t in rng.sample(vocab, rng.randint(1, 8))}
    links = {t: rng.uniform(0.1, 3.0) for t in rng.sample(vocab, rng.randint(0, 6))}
    emb = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(dim).astype(np.float32)
    q = Query(terms=terms, links=links, embedding=emb / np.linalg.norm(emb))
    if not rich:
        return q
    must = tuple(tuple(rng.sample([f"loc:{l}" for l in LOCATIONS], rng.randint(1, 3)))
                 for _ in range(rng.choice([0, 0, 1, 2])))
    forbid = frozenset(rng.sample([f"co:c{i}" for i in range(8)] + [f"sen:{s}" for s in SENIORITY_LEVELS],
                                  rng.choice([0, 0, 1, 2])))
    penalties = {t: rng.uniform(0.1, 1.0) for t in rng.sample(vocab, rng.choice([0, 1, 2]))}
    exclude = frozenset(rng.sample(job_ids, min(len(job_ids), rng.choice([0, 3]))))
    return Query(terms=terms, links=links, embedding=q.embedding, must=must, forbid=forbid,
                 penalties=penalties, exclude_ids=exclude)


def _unit(d: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in d.values()))
    return {t: v / norm for t, v in d.items()} if norm else {}


def reference_scores(jobs: dict[str, JobRecord], emb: dict[str, np.ndarray], q: Query, scoring: str = "hybrid",
                     w_dense: float = 1.0, w_term: float = 1.0, w_link: float = 1.0) -> dict[str, float]:
    """job_id -> fused score for every job the query may return."""
    terms, links = _unit(dict(q.terms)), _unit(dict(q.links))
    out = {}
    for job_id, job in jobs.items():
        has = set(job_terms(job))
        if has & q.forbid or job_id in q.exclude_ids:
            continue
        if any(not (set(group) & has) for group in q.must):
            continue
        s = 0.0
        if scoring != "term":
            s += w_dense * float(np.dot(q.embedding.astype(np.float64), emb[job_id].astype(np.float64)))
        if scoring != "dense":
            s += w_term * sum(v for t, v in terms.items() if t in has)
            s += w_link * sum(v for t, v in links.items() if t in has)
        s -= sum(p for t, p in q.penalties.items() if t in has)
        out[job_id] = s
    return out


def reference_topk(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: -kv[1])[:k]


def assert_matches_reference(result_ids, result_scores, ref: dict[str, float], k: int, atol: float = 1e-4) -> None:
    """Same top-k as the reference: equal score lists, and every returned job really has
    its returned score (ties may be ordered either way)."""
    expected = reference_topk(ref, k)
    got = [(j, float(s)) for j, s in zip(result_ids, result_scores) if j is not None]
    assert len(got) == len(expected), (got, expected)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=atol)
    for j, s in got:
        assert j in ref, f"{j} returned but the reference excludes it"
        assert abs(ref[j] - s) <= atol, (j, ref[j], s)
    assert len({j for j, _ in got}) == len(got), "a job returned twice"
