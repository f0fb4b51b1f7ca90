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
        assert link.observations == 4
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


def test_an_apply_is_one_observation_and_its_hire_one_more():
    g = _graph()  # N = 4
    g.add_apply(["occ:dev"], ["occ:dev"])
    assert (g.hires, g.applies, g.observations) == (4, 1, 5)
    assert g.link("occ:dev", "occ:dev").weight == pytest.approx(2 / 3 * math.log(2.5))  # as a fifth hire would be
    g.add_hire(["occ:dev"], ["occ:dev"])  # the hire that followed the apply
    # N = 6, dev 3 / 3, support 3: pmi ln(3*6/(3*3)) = ln 2, weight 3/4 ln 2
    assert g.link("occ:dev", "occ:dev").weight == pytest.approx(3 / 4 * math.log(2))
    assert g.expand(["occ:dev"])[0] == pytest.approx({"occ:dev": 3 / 4 * math.log(2)})
    again = LinkGraph.from_dict(g.to_dict())
    assert (again.hires, again.applies) == (5, 1)
    assert again.expand(["occ:dev", "occ:nurse"]) == g.expand(["occ:dev", "occ:nurse"])
    before_applies = {k: v for k, v in _graph().to_dict().items() if k != "applies"}  # state from before applies
    assert LinkGraph.from_dict(before_applies).observations == 4


def test_windowed_applies_leave_the_counts_as_if_never_seen():
    day = 86400.0
    g = LinkGraph(min_support=1, apply_window_s=7 * day)
    assert g.add_apply(["occ:a"], ["occ:b"], at=0 * day)
    g.add_hire(["occ:a"], ["occ:c"])
    assert g.add_apply(["occ:a"], ["occ:b"], at=5 * day)
    assert not g.add_apply(["occ:a"], ["occ:x"], at=-3 * day)  # already outside: never counted
    assert g.link("occ:a", "occ:b").support == 2
    assert g.add_apply(["occ:d"], ["occ:e"], at=9 * day)  # pushes the day-0 apply out
    assert (g.applies, g.hires) == (2, 1) and g.link("occ:a", "occ:b").support == 1
    assert g.add_apply(["occ:d"], ["occ:e"], at=13 * day)  # and the day-5 one
    assert g.link("occ:a", "occ:b") is None and "occ:b" not in g.dst_counts  # no trace left
    again = LinkGraph.from_dict(g.to_dict())
    expected = LinkGraph(min_support=1)  # what the window holds, counted from scratch
    expected.add_hire(["occ:a"], ["occ:c"])
    for _ in range(2):
        expected.add_apply(["occ:d"], ["occ:e"])
    for graph in (g, again):
        assert graph.expand(["occ:a", "occ:d"]) == expected.expand(["occ:a", "occ:d"])
        assert (graph.src_counts, graph.dst_counts) == (expected.src_counts, expected.dst_counts)
    assert again.add_apply(["occ:d"], ["occ:e"], at=21 * day) and again.applies == 1  # the window went along
    with pytest.raises(ValueError, match="event time"):
        g.add_apply(["occ:a"], ["occ:b"])


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
    assert "learned link skill:care -> skill:triage (0.46)" in why.as_strings()


def _expansion_by_link(g: LinkGraph, attrs: list[str]) -> dict[str, float]:
    """dst -> the sum of `link(a, dst).weight > 0` over attrs: the scalar formula."""
    want: dict[str, float] = {}
    for a in attrs:
        for d in set(g.pair_counts.get(a, {})) | {d for s, d in g.overrides if s == a}:
            w = g.link(a, d).weight
            if w > 0:
                want[d] = want.get(d, 0.0) + w
    return want


def _assert_expansion_is(g: LinkGraph, attrs: list[str], top: int) -> None:
    want = _expansion_by_link(g, attrs)
    terms, sources = g.expand(attrs, top=top)
    assert list(terms.values()) == pytest.approx(sorted(want.values(), reverse=True)[:top], rel=1e-9)
    for d, w in terms.items():
        assert w == pytest.approx(want[d], rel=1e-9)
        assert sum(w for _, w in sources[d]) == pytest.approx(want[d], rel=1e-9)


def test_expansion_equals_the_sum_of_each_links_weight_on_a_random_graph():
    """`expand` weighs all links at once; `link` weighs one with the scalar formula. On a
    random graph with pinned and switched-off links, the expansion is each target's sum
    of `link(...).weight > 0` over the member's attributes, strongest first, and stays so
    as hires arrive."""
    import random

    rng = random.Random(5)
    srcs, dsts = [f"skill:s{i}" for i in range(40)], [f"skill:d{i}" for i in range(150)]  # > 64: arrays grow
    g = LinkGraph(min_support=2, shrinkage=1.5)
    for _ in range(400):
        g.add_hire(rng.sample(srcs, rng.randint(1, 6)), rng.sample(dsts, rng.randint(1, 6)))
    g.adjust("skill:s1", "skill:d1", 2.5)  # pinned up
    g.adjust("skill:s1", "skill:d2", 0.0)  # switched off
    g.adjust("skill:s2", "skill:never-hired", 0.7)  # a link no hire made
    for attrs in (["skill:s1", "skill:s2", "skill:s3"], rng.sample(srcs, 8), ["skill:unknown"]):
        for top in (5, 64):
            _assert_expansion_is(g, attrs, top)
    for _ in range(3):  # new hires change the rows already expanded
        g.add_hire(["skill:s3", "skill:s4"], ["skill:d7", "skill:new"])
        _assert_expansion_is(g, ["skill:s1", "skill:s3", "skill:s4"], 64)
    assert "skill:d2" not in g.expand(["skill:s1"])[0]
    assert g.expand(["skill:s1"])[0]["skill:d1"] == pytest.approx(2.5)
    assert g.expand(["skill:s2"])[0]["skill:never-hired"] == pytest.approx(0.7)
    assert LinkGraph.from_dict(g.to_dict()).expand(["skill:s3", "skill:s4"]) == g.expand(["skill:s3", "skill:s4"])
