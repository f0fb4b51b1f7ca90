"""Hire-graph learned links: weights on a hand-made hire graph, computed by hand."""
from __future__ import annotations

import math

import pytest

from index import JobIndex, LinkGraph, member_query

# Four confirmed hires (member attributes -> job attributes):
HIRES = [
    (["occ:nurse", "skill:care"], ["occ:nurse", "skill:triage"]),
    (["occ:nurse"], ["occ:nurse"]),
    (["occ:nurse", "skill:care"], ["occ:nurse", "skill:triage"]),
    (["occ:dev"], ["occ:dev"]),
]
# By hand: N = 4; member counts nurse 3, care 2, dev 1; job counts nurse 3, triage 2, dev 1.
#   nurse -> triage: support 2, pmi ln(2*4/(3*2)) = ln(4/3) = 0.2876821, weight 2/3 * pmi = 0.1917880
#   care  -> triage: support 2, pmi ln(2*4/(2*2)) = ln 2   = 0.6931472, weight 2/3 * pmi = 0.4620981
#   nurse -> nurse : support 3, pmi ln(3*4/(3*3)) = ln(4/3),            weight 3/4 * pmi = 0.2157616
#   care  -> nurse : support 2, pmi ln(2*4/(2*3)) = ln(4/3),            weight 2/3 * pmi = 0.1917880
#   dev   -> dev   : support 1 < min_support 2: pmi ln 4 = 1.3862944, weight 0
EXPECTED = {
    ("occ:nurse", "skill:triage"): (2, 0.2876821, 0.1917880),
    ("skill:care", "skill:triage"): (2, 0.6931472, 0.4620981),
    ("occ:nurse", "occ:nurse"): (3, 0.2876821, 0.2157616),
    ("skill:care", "occ:nurse"): (2, 0.2876821, 0.1917880),
    ("occ:dev", "occ:dev"): (1, 1.3862944, 0.0),
}


def _graph() -> LinkGraph:
    g = LinkGraph(min_support=2, shrinkage=1.0)
    for member, job in HIRES:
        g.add_hire(member, job)
    return g


def test_link_weights_equal_hand_computed_values():
    g = _graph()
    for (src, dst), (support, pmi, weight) in EXPECTED.items():
        link = g.link(src, dst)
        assert link is not None, (src, dst)
        assert link.support == support
        assert link.hires == 4
        assert link.pmi == pytest.approx(pmi, abs=1e-6)
        assert link.weight == pytest.approx(weight, abs=1e-6)
    assert g.link("occ:dev", "skill:triage") is None  # never hired together


def test_expansion_sums_links_and_keeps_their_sources():
    terms, sources = _graph().expand(["occ:nurse", "skill:care"])
    assert terms == pytest.approx({"skill:triage": 0.1917880 + 0.4620981, "occ:nurse": 0.2157616 + 0.1917880}, abs=1e-6)
    assert dict(sources["skill:triage"]) == pytest.approx({"occ:nurse": 0.1917880, "skill:care": 0.4620981}, abs=1e-6)
    assert list(terms) == ["skill:triage", "occ:nurse"]  # strongest first
    assert _graph().expand(["occ:dev"]) == ({}, {})  # below min support: no links


def test_each_hire_updates_the_weights_online():
    g = _graph()
    g.add_hire(["occ:dev"], ["occ:dev"])
    # N = 5, dev 2 / 2, support 2: pmi ln(2*5/(2*2)) = ln 2.5, weight 2/3 ln 2.5
    assert g.link("occ:dev", "occ:dev").weight == pytest.approx(2 / 3 * math.log(2.5))
    # other links move with N too: care -> triage pmi ln(2*5/(2*2))
    assert g.link("skill:care", "skill:triage").pmi == pytest.approx(math.log(2.5))


def test_links_can_be_adjusted_by_hand_and_serialized():
    g = _graph()
    g.adjust("occ:nurse", "skill:triage", 0.0)
    g.adjust("occ:dev", "skill:python", 1.5)
    assert g.link("occ:nurse", "skill:triage").adjusted
    assert [l.dst for l in g.links_from("occ:nurse")] == ["occ:nurse"]
    assert g.expand(["occ:dev"])[0] == {"skill:python": 1.5}
    g.adjust("occ:nurse", "skill:triage", None)
    assert g.link("occ:nurse", "skill:triage").weight == pytest.approx(0.1917880, abs=1e-6)
    again = LinkGraph.from_dict(g.to_dict())
    assert again.to_dict() == g.to_dict()
    assert again.expand(["occ:nurse", "skill:care", "occ:dev"]) == g.expand(["occ:nurse", "skill:care", "occ:dev"])


def test_records_are_turned_into_attributes():
    g = LinkGraph(min_support=1)
    member = dict(member_id="m", title="Staff Nurse", occupation="nurse", skills=["Care"], location="Rome",
                  seniority="mid")
    job = dict(job_id="j", title="ICU Nurse", occupation="nurse", skills=["Triage"], location="Rome",
               seniority="senior", company_id="c9")
    g.add_hire(member, job)
    assert g.link("skill:care", "skill:triage").support == 1
    assert g.link("title:staff", "sen:senior") is not None
    assert g.link("skill:care", "loc:rome") is None  # location and company are not link targets
    assert g.link("skill:care", "co:c9") is None


def test_links_retrieve_jobs_the_member_has_no_terms_for():
    g = _graph()
    index = JobIndex.create("term,exact", dim=8, backend="numpy")
    index.upsert([
        dict(job_id="triage-job", title="Triage Specialist", skills=["triage"], location="Rome", seniority="mid"),
        dict(job_id="chef-job", title="Chef", skills=["cooking"], location="Rome", seniority="mid"),
    ])
    member = dict(member_id="m", title="Carer", skills=["care"], location="Oslo", seniority="mid")
    without = index.search([member_query(member)], k=2)
    assert without.ids[0][0] is None or without.scores[0][0] <= 0.5  # only "sen:mid" in common
    with_links = index.search([member_query(member, links=g)], k=1)
    assert with_links.ids[0][0] == "triage-job"
    why = with_links.reasons[0][0]
    assert ("skill:care", "skill:triage", pytest.approx(0.4620981, abs=1e-6)) in why.matched_links
    assert why.link_score > 0
    assert "hired skill:care -> skill:triage (link 0.46)" in why.as_strings()
