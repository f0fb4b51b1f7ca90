"""The fused CPU scan (index/scan.py) against the matrix path and brute force.

Blocks are shrunk to 97 rows so a small catalog crosses many block bounds, and the
candidate buffer to a few entries so the running top-k is cut again and again."""
from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

import index.scan as scan_module
import index.segment as segment_module
from index import JobIndex, Query
from index.scan import BlockPostings
from tests.index_reference import assert_matches_reference, random_catalog, random_query, reference_scores

DIM = 16


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(scan_module, "BLOCK_ROWS", 97)
    monkeypatch.setattr(scan_module, "BUFFER", 24)
    monkeypatch.setattr(segment_module, "HEAD_MIN_JOBS", 0)


def _built(scan: str, jobs, emb, closed, **kw) -> JobIndex:
    index = JobIndex.create("hybrid,exact", dim=DIM, backend="numpy", exact_scan=scan, **kw)
    index.upsert(jobs[:700], embeddings=emb[:700])
    index.compact()
    index.upsert(jobs[700:], embeddings=emb[700:])
    index.delete(closed)
    return index


@pytest.mark.parametrize("head_terms", [0, 32])
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_scan_equals_the_matrix_scan_and_brute_force(seed, head_terms, small_blocks):
    jobs, emb = random_catalog(seed, 900, DIM)
    closed = [j.job_id for j in jobs[::13]]
    fused = _built("fused", jobs, emb, closed, head_terms=head_terms)
    matrix = _built("matrix", jobs, emb, closed, head_terms=head_terms)
    assert fused._fused and not matrix._fused
    assert (len(fused._state.main.head_cols) > 0) == (head_terms > 0)
    live = {j.job_id: j for j in jobs if j.job_id not in set(closed)}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    rng = random.Random(seed)
    # 40 queries: the scan splits them across threads; rich ones carry every filter kind
    queries = [random_query(rng, DIM, list(live), rich=i % 4 != 0) for i in range(40)]
    got, want = fused.search(queries, k=30), matrix.search(queries, k=30)
    for i, q in enumerate(queries):
        ref = reference_scores(live, vecs, q)
        assert_matches_reference(got.ids[i], got.scores[i], ref, 30)
        np.testing.assert_allclose(got.scores[i], want.scores[i], atol=1e-4)


def test_ties_at_the_cut_keep_exactly_k_distinct_jobs(small_blocks):
    # term-only scores take a few values, so hundreds of jobs tie at the k-th score
    jobs, emb = random_catalog(3, 900, DIM)
    index = JobIndex.create("term,exact", dim=DIM, backend="numpy", exact_scan="fused")
    index.upsert(jobs, embeddings=emb)
    q = Query(terms={"loc:berlin": 1.0, "sen:mid": 0.5})
    res = index.search([q], k=40)
    live = {j.job_id: j for j in jobs}
    assert_matches_reference(res.ids[0], res.scores[0], reference_scores(live, {}, q, scoring="term"), 40)


def test_a_query_whose_filters_leave_few_jobs_gets_only_those(small_blocks):
    jobs, emb = random_catalog(4, 900, DIM)
    index = _built("fused", jobs, emb, closed=[])
    target = jobs[5]
    q = Query(embedding=emb[0], must=((f"co:{target.company_id}",), (f"loc:{target.location}",)),
              forbid=frozenset({f"sen:{target.seniority}"}), exclude_ids=frozenset({jobs[6].job_id}))
    res = index.search([q], k=900)
    allowed = {j.job_id for j in jobs if j.company_id == target.company_id and j.location == target.location
               and j.seniority != target.seniority and j.job_id != jobs[6].job_id}
    got = [j for j in res.ids[0] if j is not None]
    assert set(got) == allowed and len(got) == len(allowed)
    assert np.all(np.isneginf(res.scores[0][len(got):]))


def test_block_postings_hold_each_posting_once_in_its_block():
    m = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32))
    bp = BlockPostings.build(m, block_rows=2)
    assert bp.ptr.shape == (3, 4)
    lists = [[(bp.jobs[bp.ptr[b, t]: bp.ptr[b, t + 1]] + 2 * b).tolist() for b in range(3)] for t in range(3)]
    assert [sum(per_block, []) for per_block in lists] == [[0, 2, 4], [1, 2], [0, 1, 3]]


def test_scan_choice_is_checked():
    with pytest.raises(ValueError, match="exact_scan"):
        JobIndex.create("hybrid,exact", dim=DIM, backend="numpy", exact_scan="heap")
    assert JobIndex.create("hybrid,exact", dim=DIM, backend="numpy")._fused  # auto: fused on NumPy
