"""The in-process scoring path: folding, surface-aware retrieval, rules, links, results."""
from __future__ import annotations

import pytest

from streams.state import apply_job_event
from serving.online.engine import MatchingEngine
from serving.online.scorer import BM25Scorer, PopularityScorer
from streams.schemas import ActionType, MemberAction, MemberActed, ScoreRequest, Surface
from tests import factories as f

NOW = f.at(10).timestamp()


def engine(*events, scorer=None):
    e = MatchingEngine(scorer or BM25Scorer())
    e.apply_all(events)
    return e


def jobs():
    return [
        f.job_posted("p1", 0, job_id="j1"),
        f.job_posted("p2", 0, job_id="j2", company_id="c2", company_name="Globex", promoted=True),
        f.job_posted("p3", 0, job_id="j3", title="Pastry Chef", occupation="pastry chef", skills=["Baking"],
                     company_id="c3", location="Paris"),
    ]


def request(surface=Surface.RECOMMENDATIONS, query=None, k=10, member_id="m1"):
    return ScoreRequest(request_id="r", member_id=member_id, surface=surface, query=query, k=k)


def ids(result):
    return [it.job_id for it in result.items]


def test_matching_jobs_rank_first_with_reasons_and_timings():
    r = engine(*jobs(), f.member_upserted("u1")).score(request(), NOW)
    assert r.error is None and set(ids(r)) == {"j1", "j2", "j3"}
    assert ids(r)[-1] == "j3"  # the pastry chef job matches nothing of a data engineer
    assert any("data engineer" in reason for reason in r.items[0].reasons)
    assert r.timings_ms["total"] >= r.timings_ms["rank"] >= 0 and r.model_id == "bm25"


def test_promoted_surface_only_returns_promoted_jobs():
    r = engine(*jobs(), f.member_upserted("u1")).score(request(Surface.PROMOTED), NOW)
    assert ids(r) == ["j2"]


def test_search_query_pulls_in_what_was_asked_for():
    e = engine(*jobs(), f.member_upserted("u1"))
    r = e.score(request(Surface.SEARCH, query="pastry chef", k=1), NOW, scorer=None)
    assert ids(r) == ["j3"]  # ranked by the index's fused score: the query term dominates
    assert ids(e.score(request(k=1), NOW, scorer=None)) != ["j3"]


def test_closed_jobs_leave_the_index_and_redelivery_changes_nothing():
    e = engine(*jobs(), f.member_upserted("u1"), f.job_closed("c1", "j1", 1))
    assert "j1" not in ids(e.score(request(), NOW))
    assert e.job("j1") is not None  # histories still name it
    applied = e.applied
    assert not e.apply(f.job_posted("p1", 0, job_id="j1"))  # an older event for the job
    assert not e.apply(f.member_upserted("u1"))  # a redelivered member event
    assert e.applied == applied and "j1" not in ids(e.score(request(), NOW))


def test_dismiss_feedback_masks_the_company_and_the_job():
    e = engine(*jobs(), f.member_upserted("u1"), f.action("d1", "dismiss", 1, job_id="j2", reason="company"))
    assert "j2" not in ids(e.score(request(), NOW))
    # another member did not dismiss anything
    e.apply(f.member_upserted("u2", 0, member_id="m2"))
    assert "j2" in ids(e.score(request(member_id="m2"), NOW))


def test_hires_teach_links_from_the_member_profile():
    e = engine(*jobs(), f.member_upserted("u1"), f.hire("h1", 2, job_id="j3"), f.hire("h2", 3, job_id="j3"))
    assert e.links.hires == 2
    link = e.links.link("occ:data engineer", "occ:pastry chef")
    assert link is not None and link.support == 2


def test_applies_teach_links_once_each_and_views_teach_none():
    apply = f.action("a1", "apply", 2, job_id="j3")
    e = engine(*jobs(), f.member_upserted("u1"), apply, apply, f.action("v1", "view", 2, job_id="j1"),
               f.hire("h1", 3, job_id="j3"))
    assert (e.links.applies, e.links.hires) == (1, 1)  # the redelivered apply counted once
    assert e.links.link("occ:data engineer", "occ:pastry chef").support == 2
    assert e.links.link("occ:data engineer", "occ:data engineer") is None  # a view is no observation


def test_applies_teach_links_for_four_weeks_and_hires_for_ever():
    e = engine(*jobs(), f.member_upserted("u1"), f.member_upserted("u2", 0, member_id="m2"),
               f.action("a1", "apply", 2, job_id="j3"), f.hire("h1", 3, job_id="j3"))
    assert e.links.link("occ:data engineer", "occ:pastry chef").support == 2
    e.apply(f.action("a2", "apply", 2 + 29 * 24, member_id="m2", job_id="j1"))  # 29 days on
    assert (e.links.applies, e.links.hires) == (1, 1)  # a1 has left the window, a2 counts
    assert e.links.link("occ:data engineer", "occ:pastry chef").support == 1  # the hire's, for ever


def test_popularity_uses_counts_as_of_now():
    e = engine(*jobs(), f.member_upserted("u1"), *[f.action(f"a{i}", "apply", 1 + i, member_id="m2", job_id="j3")
                                                    for i in range(3)])
    r = e.score(request(k=1), NOW, scorer=PopularityScorer())
    assert ids(r) == ["j3"] and r.model_id == "popularity"


def test_member_without_profile_gets_popular_open_jobs():
    e = engine(*jobs(), MemberActed(event_id="v", event_time=f.at(1), payload=MemberAction(
        member_id="m9", action=ActionType.CLICK, job_id="j3")))
    r = e.score(request(member_id="m9", k=2), NOW, scorer=PopularityScorer())
    assert ids(r)[0] == "j3" and r.error is None


def test_job_catalog_rule_matches_the_jobs_agent():
    posted = f.job_posted("p1", 1, job_id="j1")
    entry = apply_job_event(None, posted)
    assert entry.open and apply_job_event(entry, posted) is entry  # redelivery
    assert apply_job_event(entry, f.job_posted("old", 0, job_id="j1")) is entry  # older event
    closed = apply_job_event(entry, f.job_closed("c", "j1", 2))
    assert not closed.open and closed.job == entry.job


def test_unknown_retrieval_is_a_clear_error():
    e = engine(*jobs(), f.member_upserted("u1"))
    with pytest.raises(ValueError, match="unknown retrieval 'nope'"):
        e.retrieve(e.member("m1"), retrieval="nope")


def test_an_ego_graph_encoder_is_the_dense_column_and_its_graph_follows_the_events():
    import numpy as np
    import torch

    from models.ego_embedder import EgoGraphEmbedder
    from models.ego_graph import node_key
    from models.encoder import EncoderConfig, PLM4JobEncoder
    from models.encoder_training import PromptBuilder, PromptSpec, embed_nodes, train_tokenizer

    tokenizer = train_tokenizer(["Title: Senior Data Engineer Pastry Chef Company: Acme Globex Location: Seattle "
                                 "Paris Skills: Python Spark SQL Baking Seniority: senior mid"], vocab_size=120)
    builder = PromptBuilder(tokenizer, PromptSpec(max_len=48, ego_tokens=16, neighbour_tokens=6, fanout=(3, 2)))
    torch.manual_seed(0)
    model = PLM4JobEncoder(EncoderConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1, num_heads=4,
                                         intermediate_size=64, max_position_embeddings=48, embedding_dim=16))
    embedder = EgoGraphEmbedder(model, builder)
    e = MatchingEngine(BM25Scorer(), embedder=embedder)
    e.apply_all([f.company("co1"), *jobs(), f.member_upserted("u1"), f.action("a1", "apply", 1, job_id="j1")])

    graph = embedder.graph
    assert node_key("job", "j1") in graph.neighbours(node_key("member", "m1"))  # the apply became an edge
    assert node_key("company", "c1") in graph.neighbours(node_key("job", "j1"))
    r = e.score(request(), NOW, scorer=None)
    assert r.error is None and set(ids(r)) == {"j1", "j2", "j3"}
    index = e.indexes[e.default_retrieval]
    assert index.embedder is embedder and index.config.dim == 16
    # the member's vector is the encoder's, over the graph the events built
    expected = embed_nodes(model, builder, graph, [node_key("member", "m1")])[0]
    np.testing.assert_allclose(embedder.embed_members([f.profile()])[0], expected, atol=1e-6)
