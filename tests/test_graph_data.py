"""The encoder's graph from events: nodes, edges, the time split and similar members."""
from __future__ import annotations

from models.ego_graph import node_key
from serving.graph_data import apply_graph_event, link_similar_members, split_events
from tests import factories as f

M, J, C = (lambda i: node_key("member", i)), (lambda i: node_key("job", i)), (lambda i: node_key("company", i))


def market_events():
    """Day 0: entities; m1 applies to j1 (h1); m2 is hired into j2 (h2); cutoff at h10;
    later m1 applies to j3, m3 (new, no past links) applies to j1, m1 re-applies to j1."""
    return [
        f.company("e0"),
        f.member_upserted("e1", member_id="m1"),
        f.member_upserted("e2", member_id="m2", location="Paris"),
        f.job_posted("e3", job_id="j1"),
        f.job_posted("e4", job_id="j2", title="Nurse", occupation="nurse"),
        f.action("e5", "view", hours=0.5, member_id="m1", job_id="j2"),
        f.action("e6", "apply", hours=1, member_id="m1", job_id="j1"),
        f.hire("e7", hours=2, member_id="m2", job_id="j2"),
        f.job_closed("e8", "j2", hours=3),
        f.job_posted("e9", hours=11, job_id="j3"),
        f.member_upserted("e10", hours=11, member_id="m3", skills=["Python"]),
        f.action("e11", "apply", hours=12, member_id="m1", job_id="j3"),
        f.action("e12", "apply", hours=12, member_id="m3", job_id="j1"),
        f.action("e13", "apply", hours=13, member_id="m1", job_id="j1"),
    ]


def test_events_make_typed_nodes_and_only_applies_and_hires_make_edges():
    events = market_events()
    from models.ego_graph import HeteroGraph

    g = HeteroGraph()
    links = [apply_graph_event(g, e) for e in events[:8]]
    assert {n: g.nodes[n].type for n in (M("m1"), J("j1"), C("c1"))} == {
        M("m1"): "member", J("j1"): "job", C("c1"): "company"}
    assert "Company: Acme" in g.nodes[J("j1")].text and "Title: Senior Data Engineer" in g.nodes[J("j1")].text
    made = [(l.member_id, l.job_id, l.kind) for l in links if l is not None]
    assert made == [(M("m1"), J("j1"), "apply"), (M("m2"), J("j2"), "hired")]
    assert J("j2") not in g.neighbours(M("m1"))  # a view is no edge
    assert g.neighbours(J("j1"))[C("c1")].kind == "posted_by"


def test_split_holds_out_new_pairs_after_the_cutoff():
    cutoff = f.at(10).timestamp()
    s = split_events(market_events(), cutoff, similar_members=0)
    assert [(l.member_id, l.job_id) for l in s.train_links] == [(M("m1"), J("j1")), (M("m2"), J("j2"))]
    # m1's re-application to j1 is not new; m3 joined after the cutoff and is still scored
    assert s.heldout == [(M("m1"), J("j3")), (M("m3"), J("j1"))]
    assert M("m1") not in s.graph.neighbours(J("j3"))  # held-out edges never enter the graph
    # j2 closed before the cutoff; j3 was posted after it and is a candidate
    assert s.candidate_jobs == [J("j1"), J("j3")]
    assert s.seen == {M("m1"): {J("j1")}, M("m2"): {J("j2")}}
    assert s.stats["heldout_cold_members"] == 1


def test_similar_members_link_within_an_occupation_by_profile():
    from models.ego_graph import HeteroGraph

    g = HeteroGraph()
    profiles = {
        "a": f.profile("a", skills=["Python", "SQL"]),
        "b": f.profile("b", skills=["Python", "SQL"]),  # same skills, same city
        "c": f.profile("c", skills=["Excel"], location="Paris"),
        "d": f.profile("d", occupation="nurse", title="Nurse", skills=["Python", "SQL"]),
    }
    for p in profiles.values():
        apply_graph_event(g, f.member_upserted(f"u-{p.member_id}", **p.model_dump()))
    assert link_similar_members(g, profiles, k=1) == 2  # a-b (mutual, one edge) and c-a
    assert set(g.neighbours(M("a"))) == {M("b"), M("c")}
    assert g.neighbours(M("a"))[M("b")].kind == "similar"
    assert g.neighbours(M("d")) == {}  # the only nurse has no look-alike
