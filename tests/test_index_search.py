"""Exact one-pass search equals a brute-force reference; top-k; modes; approximate mode."""
from __future__ import annotations

import random

import numpy as np
import pytest

import index.segment as segment_module
from index import JobIndex, Query, member_query
from index.topk import topk
from tests.index_reference import (
    BACKENDS,
    assert_matches_reference,
    random_catalog,
    random_query,
    reference_scores,
)

DIM = 16


def _index(spec: str = "hybrid,exact", backend: str = "numpy", **kw) -> JobIndex:
    return JobIndex.create(spec, dim=DIM, backend=backend, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head_columns", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_hybrid_equals_brute_force_over_main_and_delta(seed, head_columns, backend, monkeypatch):
    if head_columns:  # frequent terms scored as dense columns even in this small catalog
        monkeypatch.setattr(segment_module, "HEAD_MIN_JOBS", 0)
    jobs, emb = random_catalog(seed, 600, DIM)
    index = _index(backend=backend, query_chunk=7, fused_chunk=7, head_terms=32 if head_columns else 0)  # uneven last chunk
    index.upsert(jobs[:400], embeddings=emb[:400])
    index.compact()
    index.upsert(jobs[400:], embeddings=emb[400:])  # these stay in the delta
    closed = [j.job_id for j in jobs[::17]]
    index.delete(closed)
    live = {j.job_id: j for j in jobs if j.job_id not in set(closed)}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}

    rng = random.Random(seed)
    queries = [random_query(rng, DIM, list(live)) for _ in range(25)]
    result = index.search(queries, k=20)
    assert index.delta_size == len([j for j in jobs[400:] if j.job_id in live])
    assert (len(index._state.main.head_cols) > 0) == head_columns
    for i, q in enumerate(queries):
        assert_matches_reference(result.ids[i], result.scores[i], reference_scores(live, vecs, q), 20)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scoring", ["dense", "term"])
def test_single_signal_modes_equal_brute_force(scoring, backend, monkeypatch):
    monkeypatch.setattr(segment_module, "HEAD_MIN_JOBS", 0)
    jobs, emb = random_catalog(7, 300, DIM)
    index = _index(f"{scoring},exact", backend)
    index.upsert(jobs, embeddings=emb)
    live = {j.job_id: j for j in jobs}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    rng = random.Random(7)
    queries = [random_query(rng, DIM, list(live)) for _ in range(15)]
    result = index.search(queries, k=15)
    for i, q in enumerate(queries):
        assert_matches_reference(result.ids[i], result.scores[i], reference_scores(live, vecs, q, scoring), 15)


def test_fusion_weights_are_applied():
    jobs, emb = random_catalog(3, 200, DIM)
    index = _index(dense_weight=0.3, term_weight=2.0, link_weight=0.5)
    index.upsert(jobs, embeddings=emb)
    live = {j.job_id: j for j in jobs}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    rng = random.Random(3)
    for q in [random_query(rng, DIM, list(live)) for _ in range(5)]:
        res = index.search([q], k=10)
        ref = reference_scores(live, vecs, q, "hybrid", 0.3, 2.0, 0.5)
        assert_matches_reference(res.ids[0], res.scores[0], ref, 10)


def test_reasons_say_what_matched():
    jobs, emb = random_catalog(5, 100, DIM)
    index = _index()
    index.upsert(jobs, embeddings=emb)
    rng = random.Random(5)
    q = random_query(rng, DIM, [], rich=False)
    res = index.search([q], k=5)
    for job_id, score, why in zip(res.ids[0], res.scores[0], res.reasons[0]):
        job = next(j for j in jobs if j.job_id == job_id)
        vec = emb[int(job_id[1:])]
        assert why.similarity == pytest.approx(float(np.dot(q.embedding, vec)), abs=1e-5)
        assert why.score == pytest.approx(why.similarity + why.term_score + why.link_score - why.penalty, abs=1e-4)
        assert why.score == pytest.approx(float(score))
        from index.terms import job_terms
        assert set(why.matched_terms) == set(q.terms) & set(job_terms(job))


def test_fewer_qualifying_jobs_than_k_pads_with_none():
    jobs, emb = random_catalog(9, 50, DIM)
    index = _index()
    index.upsert(jobs, embeddings=emb)
    q = random_query(random.Random(1), DIM, [], rich=False)
    only = jobs[0]
    q = type(q)(terms=q.terms, embedding=q.embedding, must=((f"co:{only.company_id}",), (f"loc:{only.location}",)))
    res = index.search([q], k=50)
    allowed = {j.job_id for j in jobs if j.company_id == only.company_id and j.location == only.location}
    got = [j for j in res.ids[0] if j is not None]
    assert set(got) == allowed
    assert np.all(np.isneginf(res.scores[0][len(got):]))


def test_member_query_end_to_end_prefers_matching_jobs():
    index = _index()
    index.upsert([
        dict(job_id="nurse-berlin", title="Registered Nurse", occupation="registered nurses", skills=["triage"],
             location="Berlin", seniority="mid", company_id="c1"),
        dict(job_id="dev-berlin", title="Software Engineer", occupation="software developers",
             skills=["python", "sql"], location="Berlin", seniority="mid", company_id="c2"),
        dict(job_id="dev-paris", title="Software Engineer", occupation="software developers",
             skills=["python"], location="Paris", seniority="mid", company_id="c3"),
    ])
    member = dict(member_id="m", title="Software Engineer", occupation="software developers",
                  skills=["python", "sql"], location="Berlin", seniority="mid")
    res = index.search([member_query(member, index.embedder)], k=3)
    assert list(res.ids[0]) == ["dev-berlin", "dev-paris", "nurse-berlin"]
    res = index.search([member_query(member, index.embedder, same_location=True)], k=3)
    assert [j for j in res.ids[0] if j is not None] == ["dev-berlin", "nurse-berlin"]


@pytest.mark.parametrize("n,k", [(1000, 10), (1000, 1), (50, 100), (4096, 100)])
def test_topk_equals_full_sort(n, k):
    rng = np.random.default_rng(n + k)
    scores = rng.standard_normal((9, n)).astype(np.float32)
    scores[1] = -np.inf  # a fully masked row
    scores[2, : n // 2] = -np.inf
    scores[3] = np.round(scores[3])  # many ties
    vals, cols = topk(np, scores, k)
    want = -np.sort(-scores, axis=1)[:, : min(k, n)]
    np.testing.assert_array_equal(vals, want)
    np.testing.assert_array_equal(np.take_along_axis(scores, cols, axis=1), vals)
    for row in cols:
        assert len(set(row.tolist())) == len(row)


def test_index_spec_parsing_and_errors():
    assert _index("dense,approx").config.search == "approx"
    with pytest.raises(ValueError, match="unknown scoring"):
        JobIndex.create("fancy,exact")
    with pytest.raises(ValueError, match="approximate search needs embeddings"):
        JobIndex.create("term,hnsw")
    with pytest.raises(ValueError, match="index spec"):
        JobIndex.create("a,b,c")
    index = _index()
    with pytest.raises(ValueError, match="embeddings have shape"):
        index.upsert([dict(job_id="x", title="t", location="l", seniority="mid")], embeddings=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="unknown seniority"):
        index.upsert([dict(job_id="x", title="t", location="l", seniority="guru")])


def exact_and_approximate(scoring: str, kind: str, seed: int, backend: str = "numpy"):
    """The same 3,000-job catalog, every tenth job closed, in an exact and an approximate index."""
    jobs, emb = random_catalog(seed, 3000, DIM)
    exact = _index(f"{scoring},exact", backend)
    approx = _index(f"{scoring},{kind}", backend, target_recall=0.95)
    for ix in (exact, approx):
        ix.upsert(jobs, embeddings=emb)
        ix.compact()
        ix.delete([j.job_id for j in jobs[::10]])
    return jobs, emb, exact, approx


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_mode_is_close_to_exact_and_respects_masks(kind, backend):
    jobs, emb, exact, approx = exact_and_approximate("hybrid", kind, seed=11, backend=backend)
    assert approx.ann is not None and approx.ann.kind == kind
    rng = random.Random(11)
    queries = [random_query(rng, DIM, [j.job_id for j in jobs]) for _ in range(20)]
    a, e = approx.search(queries, k=20), exact.search(queries, k=20)
    closed = {j.job_id for j in jobs[::10]}
    live = {j.job_id: j for j in jobs if j.job_id not in closed}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    recalls = []
    for i, q in enumerate(queries):
        ref = reference_scores(live, vecs, q)
        got = [j for j in a.ids[i] if j is not None]
        assert not set(got) & closed
        for j, s in zip(got, a.scores[i]):
            assert ref[j] == pytest.approx(float(s), abs=1e-4)  # rescored exactly, masks applied
        want = {j for j in e.ids[i] if j is not None}
        recalls.append(len(set(got) & want) / max(1, len(want)))
    assert np.mean(recalls) >= 0.9


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_dense_only_queries_rescore_their_own_proposals_with_masks(kind, backend):
    jobs, emb, exact, approx = exact_and_approximate("dense", kind, seed=12, backend=backend)
    closed = {j.job_id for j in jobs[::10]}
    rng = np.random.default_rng(12)
    queries = []
    for _ in range(30):
        e = rng.standard_normal(DIM).astype(np.float32)
        best = exact.search([Query(embedding=e)], k=3).ids[0]
        queries.append(Query(embedding=e, exclude_ids=frozenset(best[:2])))  # e.g. jobs already applied to
    a, e = approx.search(queries, k=20), exact.search(queries, k=20)
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    recalls = []
    for i, q in enumerate(queries):
        got = [j for j in a.ids[i] if j is not None]
        assert len(got) == 20 and not set(got) & (closed | q.exclude_ids)
        np.testing.assert_allclose(a.scores[i], [float(np.dot(q.embedding, vecs[j])) for j in got], atol=1e-5)
        assert list(a.scores[i]) == sorted(a.scores[i], reverse=True)
        recalls.append(len(set(got) & set(e.ids[i])) / 20)
    assert np.mean(recalls) >= 0.9


def test_approximate_rescoring_reads_embeddings_that_share_rows_with_head_columns(monkeypatch):
    monkeypatch.setattr(segment_module, "HEAD_MIN_JOBS", 0)
    jobs, emb = random_catalog(13, 3000, DIM)
    index = _index("hybrid,ivf", head_terms=32)
    index.upsert(jobs, embeddings=emb)
    index.compact()
    main = index._state.main
    assert len(main.head_cols) and not main.embeddings_host.flags.c_contiguous  # rows are [embedding | head]
    rng = np.random.default_rng(13)
    queries = [Query(embedding=rng.standard_normal(DIM).astype(np.float32)) for _ in range(10)]
    result = index.search(queries, k=10)
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    for i, q in enumerate(queries):
        np.testing.assert_allclose(result.scores[i], [float(np.dot(q.embedding, vecs[j])) for j in result.ids[i]],
                                   atol=1e-5)


def test_proposals_are_rescored_exactly_and_missing_ones_never_win():
    from index.ann import proposal_scores

    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, DIM)).astype(np.float32)
    q = rng.standard_normal((3, DIM)).astype(np.float32)
    proposals = rng.integers(0, 50, size=(3, 7))
    proposals[1, 4] = -1  # faiss found fewer than asked
    got = proposal_scores(x, q, proposals)
    want = np.einsum("qcd,qd->qc", x[np.maximum(proposals, 0)], q)
    want[1, 4] = -np.inf
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexError, match="outside the 50 vectors"):
        proposal_scores(x, q, np.full((3, 2), 50))


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_hybrid_equals_brute_force_on_a_simulated_marketplace(backend):
    simulator = pytest.importorskip("streams.simulator", reason="the marketplace simulator is not available")
    # the simulator reads its taxonomy path from the settings, imported when first used
    pytest.importorskip("streams.settings", reason="the marketplace simulator's settings are not available")
    sim = simulator.Marketplace(simulator.MarketplaceConfig(seed=3, n_members=60, n_companies=10, n_jobs=400, days=1))
    from index import LinkGraph, MemberRules, as_job
    jobs = [as_job(j) for j in sim.jobs.values()]
    members = list(sim.members.values())
    index = JobIndex.create("hybrid,exact", dim=DIM, backend=backend)
    index.upsert(jobs[:300])
    index.compact()
    index.upsert(jobs[300:])
    index.delete([j.job_id for j in jobs[::9]])
    links = LinkGraph(min_support=1)
    for m, j in zip(members[:30], jobs[:30]):  # any hires will do: the test is exactness
        links.add_hire(m, j)
    rules = MemberRules().update("too_senior", jobs[1]).update("wrong_location", jobs[2])
    queries = [member_query(m, index.embedder, links, rules if i % 2 else None, same_location=i % 5 == 0)
               for i, m in enumerate(members)]
    closed = {j.job_id for j in jobs[::9]}
    live = {j.job_id: j for j in jobs if j.job_id not in closed}
    emb = dict(zip((j.job_id for j in jobs), index.embedder.embed_jobs(jobs)))
    result = index.search(queries, k=25)
    for i, q in enumerate(queries):
        assert_matches_reference(result.ids[i], result.scores[i], reference_scores(live, emb, q), 25)


def test_member_free_text_moves_the_embedding_not_the_terms():
    from index import HashedTermEmbedder, MemberRecord
    from index.query import member_terms

    emb = HashedTermEmbedder(64)
    plain = MemberRecord("m", "Vineyard Manager", "Paris", "senior", "vineyard managers", ("evaluate vineyard",))
    moving = MemberRecord(**{**plain.__dict__, "about": "Looking to move into nurse roles."})
    nurse_job = emb.embed_jobs([dict_job := __import__("index").as_job(dict(
        job_id="n", title="Senior Nurse", location="Paris", seniority="senior", occupation="nurses"))])[0]
    a, b = emb.embed_members([plain, moving])
    assert float(b @ nurse_job) > float(a @ nurse_job)
    assert member_terms(plain) == member_terms(moving)
    assert dict_job.title == "Senior Nurse"
