"""Live updates: closes, updates and posts are visible to the next query, through
compaction, and writes racing a compaction are not lost."""
from __future__ import annotations

import random

import numpy as np
import pytest

import index.job_index as job_index_module
from index import JobIndex, Query
from tests.index_reference import BACKENDS, assert_matches_reference, random_catalog, random_query, reference_scores

DIM = 16


def _job(job_id: str, title: str, location: str = "Berlin", **kw):
    return dict(job_id=job_id, title=title, location=location, seniority=kw.pop("seniority", "mid"),
                company_id=kw.pop("company_id", "c1"), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", ["hybrid,exact", "dense,exact", "term,exact", "hybrid,hnsw", "dense,ivf"])
def test_closed_job_never_comes_back(spec, backend):
    jobs, emb = random_catalog(1, 400, DIM)
    index = JobIndex.create(spec, dim=DIM, backend=backend)
    index.upsert(jobs, embeddings=emb)
    index.compact()
    # queries aimed straight at the job about to close: its own embedding and terms
    target = jobs[7]
    from index.terms import job_terms
    q = Query(terms={t: 1.0 for t in job_terms(target)}, embedding=emb[7])
    assert target.job_id in index.search([q], k=5).ids[0]

    index.delete([target.job_id])
    assert target.job_id not in index
    assert target.job_id not in index.search([q], k=400).ids[0]  # tombstoned in main
    index.compact()
    assert target.job_id not in index.search([q], k=400).ids[0]  # gone from the arrays
    index.upsert(jobs[100:110], embeddings=emb[100:110])  # unrelated writes to the delta
    assert target.job_id not in index.search([q], k=400).ids[0]
    assert len(index) == 399


@pytest.mark.parametrize("backend", BACKENDS)
def test_job_closed_while_in_delta_never_comes_back(backend):
    index = JobIndex.create("hybrid,exact", dim=DIM, backend=backend)
    index.upsert([_job("a", "nurse"), _job("b", "nurse")])
    q = Query(terms={"title:nurse": 1.0})
    assert set(index.search([q], k=5).ids[0][:2]) == {"a", "b"}
    index.delete(["a"])
    assert list(index.search([q], k=5).ids[0][:2]) == ["b", None]
    index.compact()
    assert list(index.search([q], k=5).ids[0][:2]) == ["b", None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("compact_first", [False, True])
def test_update_is_visible_to_the_next_query(compact_first, backend):
    index = JobIndex.create("hybrid,exact", dim=DIM, backend=backend)
    index.upsert([_job("j1", "Chef"), _job("j2", "Chef"), _job("j3", "Teacher")])
    if compact_first:
        index.compact()
    chef, pilot = Query(terms={"title:chef": 1.0}), Query(terms={"title:pilot": 1.0})
    assert "j1" in index.search([chef], k=2).ids[0]
    index.upsert([_job("j1", "Pilot")])  # the same job, retitled
    res = index.search([chef, pilot], k=3)
    # every job is returned (k = catalog size), but j1 no longer matches "chef"
    assert dict(res.hits(0)) == {"j2": pytest.approx(1.0), "j1": 0.0, "j3": 0.0}
    assert res.ids[1][0] == "j1" and res.scores[1][0] == pytest.approx(1.0)
    assert len(index) == 3
    index.compact()
    assert index.search([pilot], k=1).ids[0][0] == "j1"
    assert dict(index.search([chef], k=3).hits(0))["j1"] == 0.0


def test_last_write_wins_within_one_batch():
    index = JobIndex.create("term,exact", dim=DIM, backend="numpy")
    index.upsert([_job("j", "Chef"), _job("j", "Pilot")])
    assert len(index) == 1
    assert index.search([Query(terms={"title:pilot": 1.0})], k=1).ids[0][0] == "j"


def test_writes_during_compaction_are_kept_and_queries_go_on(monkeypatch):
    jobs, emb = random_catalog(4, 300, DIM)
    index = JobIndex.create("hybrid,exact", dim=DIM, backend="numpy")
    index.upsert(jobs[:200], embeddings=emb[:200])
    index.compact()
    index.upsert(jobs[200:250], embeddings=emb[200:250])
    rng = random.Random(4)
    q = random_query(rng, DIM, [], rich=False)
    seen_during = {}
    real_merge = job_index_module._merge

    def merge_with_racing_writes(*args):
        # another thread's writes and reads, while the new main arrays are being built
        index.upsert(jobs[250:], embeddings=emb[250:])
        index.delete(["j3", "j220", "j260"])
        seen_during["result"] = index.search([q], k=300)
        return real_merge(*args)

    monkeypatch.setattr(job_index_module, "_merge", merge_with_racing_writes)
    index.compact()
    closed = {"j3", "j220", "j260"}
    live = {j.job_id: j for j in jobs if j.job_id not in closed}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    ref = reference_scores(live, vecs, q)
    during = seen_during["result"]
    assert_matches_reference(during.ids[0], during.scores[0], ref, 300)
    after = index.search([q], k=300)
    assert_matches_reference(after.ids[0], after.scores[0], ref, 300)
    assert len(index) == 297
    assert index.delta_size == 50 - 1  # the racing upserts were replayed into the new delta


def test_delta_limit_compacts_automatically():
    jobs, emb = random_catalog(2, 100, DIM)
    index = JobIndex.create("hybrid,exact", dim=DIM, backend="numpy", delta_limit=30)
    for lo in range(0, 100, 10):
        index.upsert(jobs[lo: lo + 10], embeddings=emb[lo: lo + 10])
        assert index.delta_size < 30
    assert len(index) == 100


def test_reset_forgets_every_job():
    jobs, emb = random_catalog(2, 50, DIM)
    index = JobIndex.create("hybrid,exact", dim=DIM, backend="numpy")
    index.upsert(jobs, embeddings=emb)
    index.compact()
    index.reset()
    assert len(index) == 0
    res = index.search([Query(terms={"loc:berlin": 1.0}, embedding=emb[0])], k=3)
    assert list(res.ids[0]) == [None, None, None]
    assert np.all(np.isneginf(res.scores))


def test_stream_payloads_go_in_as_they_are():
    """The stream agent hands pydantic payloads straight to the index and link graph."""
    from index import LinkGraph, member_query
    from streams.schemas import Job, MemberProfile

    job = Job(job_id="j1", company_id="c1", company_name="Acme", title="Data Engineer", occupation="data engineers",
              skills=["SQL"], location="Berlin", seniority="senior", promoted=True, description="...")
    member = MemberProfile(member_id="m1", title="Data Engineer", skills=["SQL"], location="Berlin",
                           seniority="mid", years_experience=4)
    index = JobIndex.create("hybrid,exact", dim=DIM, backend="numpy")
    index.upsert([job])
    links = LinkGraph(min_support=1)
    links.add_hire(member, job)
    assert links.link("skill:sql", "skill:sql").support == 1
    res = index.search([member_query(member, index.embedder, links, promoted_only=True)], k=1)
    assert res.ids[0][0] == "j1"
    assert "title match: data" in res.reasons[0][0].as_strings()
