"""A clustered synthetic job catalog and member queries, at any size, for benchmarks.

Jobs belong to occupations (Zipf-popular, a=0.8: the largest holds ~6% of jobs, as the
largest occupations do in real postings); an occupation owns title words, a skill pool
and a centre in embedding space, so term matches and embedding neighbours agree the
way they do on real catalogs (and ANN has clusters to find, as it would on real
embeddings). Generated with NumPy in bulk; a million jobs take seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.records import SENIORITY_LEVELS, JobRecord, MemberRecord

WORDS = [f"w{i}" for i in range(400)]


@dataclass
class Catalog:
    jobs: list[JobRecord]
    embeddings: np.ndarray  # (n, d) float32, unit rows
    occupation_of: np.ndarray  # (n,) int
    centres: np.ndarray  # (n_occ, d)
    occ_words: np.ndarray  # (n_occ, 3) word ids
    occ_skills: np.ndarray  # (n_occ, 24) skill ids
    n_locations: int


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _zipf(rng: np.random.Generator, n_items: int, size: int, a: float = 0.8) -> np.ndarray:
    p = 1.0 / np.arange(1, n_items + 1) ** a
    return rng.choice(n_items, size=size, p=p / p.sum())


def make_catalog(n: int, dim: int, seed: int = 0, n_occupations: int = 1000, n_skills: int = 5000,
                 n_locations: int = 200, noise: float = 0.8) -> Catalog:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n_occupations, dim)))
    occ_words = rng.integers(0, len(WORDS), size=(n_occupations, 3))
    occ_skills = rng.integers(0, n_skills, size=(n_occupations, 24))
    occ = _zipf(rng, n_occupations, n)
    emb = _unit(centres[occ] + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim) * 1.0)
    words = occ_words[occ][np.arange(n)[:, None], rng.integers(0, 3, size=(n, 2))]
    skills = occ_skills[occ][np.arange(n)[:, None], rng.integers(0, 24, size=(n, 6))]
    loc = _zipf(rng, n_locations, n, a=0.9)
    sen = rng.integers(0, len(SENIORITY_LEVELS), size=n)
    company = rng.integers(0, max(1, n // 50), size=n)
    promoted = rng.random(n) < 0.08
    jobs = [
        JobRecord(
            job_id=f"j{i}",
            title=f"{WORDS[w[0]]} {WORDS[w[1]]}",
            location=f"city{l}",
            seniority=SENIORITY_LEVELS[s],
            company_id=f"c{c}",
            occupation=f"occ{o}",
            skills=tuple(f"s{x}" for x in sk),
            promoted=bool(p),
        )
        for i, (w, l, s, c, o, sk, p) in enumerate(zip(words.tolist(), loc.tolist(), sen.tolist(),
                                                          company.tolist(), occ.tolist(), skills.tolist(),
                                                          promoted.tolist()))
    ]
    return Catalog(jobs, emb, occ, centres, occ_words, occ_skills, n_locations)


def make_members(cat: Catalog, n: int, seed: int = 1, noise: float = 0.8) -> tuple[list[MemberRecord], np.ndarray]:
    """Members drawn like jobs (same occupations, skills, places) and their embeddings."""
    rng = np.random.default_rng(seed)
    n_occ, dim = cat.centres.shape
    occ = _zipf(rng, n_occ, n)
    emb = _unit(cat.centres[occ] + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim))
    words = cat.occ_words[occ][np.arange(n)[:, None], rng.integers(0, 3, size=(n, 2))]
    skills = cat.occ_skills[occ][np.arange(n)[:, None], rng.integers(0, 24, size=(n, 5))]
    loc = _zipf(rng, cat.n_locations, n, a=0.9)
    sen = rng.integers(0, len(SENIORITY_LEVELS), size=n)
    members = [
        MemberRecord(member_id=f"m{i}", title=f"{WORDS[w[0]]} {WORDS[w[1]]}", location=f"city{l}",
                     seniority=SENIORITY_LEVELS[s], occupation=f"occ{o}", skills=tuple(f"s{x}" for x in sk))
        for i, (w, l, s, o, sk) in enumerate(zip(words.tolist(), loc.tolist(), sen.tolist(), occ.tolist(),
                                                  skills.tolist()))
    ]
    return members, emb
