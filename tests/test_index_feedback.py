"""Feedback rules: dismiss reasons become masks and penalties in retrieval."""
from __future__ import annotations

import pytest

from index import FeedbackRules, JobIndex, MemberRules, member_query
from index.records import SENIORITY_LEVELS, seniority_rank
from tests.index_reference import BACKENDS

MEMBER = dict(member_id="m1", title="Software Engineer", occupation="software developers",
              skills=["python"], location="Berlin", seniority="mid")


def _catalog():
    jobs = []
    for i, level in enumerate(SENIORITY_LEVELS):
        for loc in ("Berlin", "Paris"):
            for co in ("c1", "c2"):
                jobs.append(dict(job_id=f"{level}-{loc}-{co}", title=f"{level} Software Engineer",
                                 occupation="software developers", skills=["python"], location=loc,
                                 seniority=level, company_id=co))
    jobs.append(dict(job_id="nurse", title="Nurse", occupation="nurses", skills=["care"], location="Berlin",
                     seniority="mid", company_id="c3"))
    return jobs


def _index(backend: str = "numpy"):
    index = JobIndex.create("hybrid,exact", dim=32, backend=backend)
    index.upsert(_catalog())
    return index


def _levels(ids):
    return {seniority_rank(j.split("-")[0]) for j in ids if j is not None and j != "nurse"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_senior_dismissals_stop_more_senior_jobs(backend):
    index, rules = _index(backend), FeedbackRules()
    jobs = {j["job_id"]: j for j in _catalog()}
    query = lambda: member_query(MEMBER, index.embedder, rules=rules.for_member("m1"))  # noqa: E731
    before = dict(index.search([query()], k=30).hits(0))
    assert max(_levels(before)) == seniority_rank("executive")

    # one dismissal of a lead job: the levels above lead are gone, lead is pushed down
    rules.record_dismiss("m1", "too_senior", jobs["lead-Berlin-c1"])
    after_one = dict(index.search([query()], k=30).hits(0))
    assert "lead-Berlin-c1" not in after_one  # the dismissed job itself never returns
    assert max(_levels(after_one)) == seniority_rank("lead")
    for job_id, s in after_one.items():
        penalty = 0.5 if job_id.startswith("lead-") else 0.0
        assert s == pytest.approx(before[job_id] - penalty, abs=1e-5)
    assert len(after_one) == len(before) - 1 - 8  # the dismissed job, and director and executive x 4

    # a senior job dismissed too: lead joins the masked levels, senior is pushed down
    rules.record_dismiss("m1", "too_senior", jobs["senior-Paris-c2"])
    ids = index.search([query()], k=30).ids[0]
    assert _levels(ids) and max(_levels(ids)) <= seniority_rank("senior")
    assert "senior-Paris-c2" not in ids
    r = rules.for_member("m1")
    assert r.forbidden_terms() == {"sen:lead", "sen:director", "sen:executive"}
    assert r.penalty_terms() == {"sen:senior": 0.5}


def test_too_junior_company_and_dismissed_job_are_masked():
    index, jobs = _index(), {j["job_id"]: j for j in _catalog()}
    before = dict(index.search([member_query(MEMBER, index.embedder)], k=30).hits(0))
    r = MemberRules().update("too_junior", jobs["entry-Berlin-c1"]).update("too_junior", jobs["entry-Berlin-c2"])
    r = r.update("company", jobs["mid-Paris-c2"])
    r = r.update("already_seen", jobs["lead-Paris-c1"])
    after = dict(index.search([member_query(MEMBER, index.embedder, rules=r)], k=30).hits(0))
    assert after
    assert min(_levels(after)) == seniority_rank("entry")  # interns are gone; entry is pushed down
    assert not any(j.endswith("-c2") for j in after)
    assert "lead-Paris-c1" not in after and "entry-Berlin-c1" not in after
    assert "entry-Paris-c1" in after  # the one entry job left (the others: dismissed, or at c2)
    for job_id, s in after.items():
        assert s == pytest.approx(before[job_id] - (1.0 if job_id.startswith("entry-") else 0.0), abs=1e-5)


def test_wrong_location_and_field_become_penalties():
    index, jobs = _index(), {j["job_id"]: j for j in _catalog()}
    plain = index.search([member_query(MEMBER, index.embedder)], k=60)
    r = MemberRules().update("wrong_location", jobs["mid-Berlin-c1"])
    assert r.penalties == {"loc:berlin": 0.5}
    penalized = index.search([member_query(MEMBER, index.embedder, rules=r)], k=60)
    before = dict(plain.hits(0))
    after = dict(penalized.hits(0))
    for job_id, s in after.items():
        expected = before[job_id] - (0.5 if "-Berlin-" in job_id or job_id == "nurse" else 0.0)
        assert s == pytest.approx(expected, abs=1e-5)
    assert "mid-Berlin-c1" not in after  # the dismissed job itself
    r = r.update("wrong_location", jobs["mid-Berlin-c2"]).update("not_my_field", jobs["nurse"])
    assert r.penalties == {"loc:berlin": 1.0, "occ:nurses": 0.5}
    why = index.search([member_query(MEMBER, index.embedder, rules=r)], k=60).reasons[0]
    assert all(w.penalty in (0.0, 1.0) for w in why)


def test_rules_are_pure_steps_that_serialize():
    job = dict(job_id="x", title="t", location="Rome", seniority="senior", company_id="c7")
    empty = MemberRules()
    after = empty.update("too_senior", job)
    assert empty == MemberRules()  # the old state is untouched
    assert after.too_senior == (seniority_rank("senior"),)
    both = after.update("too_junior", dict(job, job_id="y", seniority="entry"))
    assert both.penalty_terms() == {"sen:entry": 0.5, "sen:senior": 0.5}
    assert both.forbidden_terms() == {"sen:intern", "sen:lead", "sen:director", "sen:executive"}
    assert MemberRules.from_dict(both.to_dict()) == both
    with pytest.raises(ValueError, match="unknown dismiss reason 'boring'"):
        empty.update("boring", job)
