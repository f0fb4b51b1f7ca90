"""PLM4Job encoder: ego-graph prompts, graph signals and their switches, training, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.ego_embedder import EgoGraphEmbedder, add_company, add_job, add_member
from models.ego_graph import TYPE_ID, HeteroGraph, ego_graph, ego_prompt, node_key
from models.encoder import EncoderConfig, PLM4JobEncoder
from models.encoder_training import (
    Link,
    PromptBuilder,
    PromptSpec,
    TrainConfig,
    embed_nodes,
    info_nce,
    load_checkpoint,
    recall_at_k,
    save_checkpoint,
    train_link_prediction,
    train_tokenizer,
)

torch.set_num_threads(1)


# ---- a hand-made graph ----------------------------------------------------------------


def small_graph() -> HeteroGraph:
    """m1 was hired into j2 and applied to j1; m3 applied to both; m2 to j1 only."""
    g = HeteroGraph()
    for n in ("m1", "m2", "m3"):
        g.add_node(n, "member", f"member {n} text")
    for n in ("j1", "j2"):
        g.add_node(n, "job", f"job {n} text")
    for n in ("c1", "c2"):
        g.add_node(n, "company", f"company {n} text")
    g.add_edge("m1", "j1", "apply", time=10)
    g.add_edge("m1", "j2", "hired", time=5)
    g.add_edge("m2", "j1", "apply", time=7)
    g.add_edge("m3", "j1", "apply", time=8)
    g.add_edge("m3", "j2", "apply", time=9)
    g.add_edge("j1", "c1", "posted_by", time=1)
    g.add_edge("j2", "c2", "posted_by", time=2)
    return g


def test_ego_graph_orders_neighbours_by_hop_then_tie_strength():
    ego = ego_graph(small_graph(), "m1", fanout=(5, 5))
    # hop 1: the hire (weight 3) before the application (2); hop 2: m3 is tied to both of
    # m1's jobs (2 + 2), m2 to one (2), companies by a posting link (1), newer first
    assert [n.node_id for n in ego.nodes] == ["m1", "j2", "j1", "m3", "m2", "c2", "c1"]
    assert [n.hop for n in ego.nodes] == [0, 1, 1, 2, 2, 2, 2]
    assert [n.type for n in ego.nodes] == ["member", "job", "job", "member", "member", "company", "company"]
    d = ego.distances
    assert d[0] == (0, 1, 1, 2, 2, 2, 2)
    assert d[5][6] == 4  # c2 - j2 - (m1|m3) - j1 - c1


def test_ego_graph_fanout_and_hidden_edges():
    g = small_graph()
    assert [n.node_id for n in ego_graph(g, "m1", fanout=(1, 1)).nodes] == ["m1", "j2", "m3"]
    # hiding the m1-j1 edge (as link prediction does) leaves j1 out: it is 3 hops away now
    ego = ego_graph(g, "m1", fanout=(5, 5), exclude_edges=[("j1", "m1")])
    assert [n.node_id for n in ego.nodes] == ["m1", "j2", "m3", "c2"]
    assert [n.node_id for n in ego_graph(g, "m1", fanout=()).nodes] == ["m1"]
    with pytest.raises(KeyError, match="m9"):
        ego_graph(g, "m9")


def test_edges_keep_the_strongest_kind_and_newest_time():
    g = small_graph()
    g.add_edge("m1", "j2", "apply", time=20)  # an application after the hire
    e = g.neighbours("m1")["j2"]
    assert (e.kind, e.time) == ("hired", 20)
    with pytest.raises(KeyError, match="nope"):
        g.add_edge("m1", "nope", "apply")


def test_ego_prompt_annotates_every_token_with_its_node():
    ego = ego_graph(small_graph(), "m1", fanout=(5, 5))
    vocab: dict[str, int] = {}

    def tokenize(text):
        return [vocab.setdefault(w, 10 + len(vocab)) for w in text.split()]

    p = ego_prompt(ego, tokenize, cls_id=2, sep_id=3, max_len=64, ego_tokens=3, neighbour_tokens=2)
    # [CLS] m1(3 words) [SEP] j2(2 of 3 words) [SEP] j1 ... each neighbour cut to 2 tokens
    assert p.input_ids[:5] == [2, vocab["member"], vocab["m1"], vocab["text"], 3]
    assert p.input_ids[5:8] == [vocab["job"], vocab["j2"], 3]
    assert p.node_index == [0] * 5 + [i for i in range(1, 7) for _ in range(3)]
    assert p.hop_ids == [0] * 5 + [1] * 6 + [2] * 12
    expected_types = ["member", "job", "job", "member", "member", "company", "company"]
    assert p.type_ids == [TYPE_ID["member"]] * 5 + [TYPE_ID[t] for t in expected_types[1:] for _ in range(3)]
    assert p.node_ids == ["m1", "j2", "j1", "m3", "m2", "c2", "c1"]
    # too short for everyone: the farthest nodes are dropped whole
    short = ego_prompt(ego, tokenize, cls_id=2, sep_id=3, max_len=12, ego_tokens=3, neighbour_tokens=2)
    assert short.node_ids == ["m1", "j2", "j1"] and len(short.input_ids) == 11
    assert len(short.node_distances) == 3


# ---- the encoder and its switches ---------------------------------------------------------


def tiny_config(**switches) -> EncoderConfig:
    return EncoderConfig(
        vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
        max_position_embeddings=32, embedding_dim=16, dropout=0.0, **switches,
    )


def batch_of_two(seed=0):
    g = torch.Generator().manual_seed(seed)
    T = 12
    ids = torch.randint(5, 64, (2, T), generator=g)
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[1, 9:] = False
    node_index = torch.tensor([[0] * 4 + [1] * 4 + [2] * 4, [0] * 5 + [1] * 4 + [-1] * 3])
    dist = torch.tensor([[[0, 1, 2], [1, 0, 1], [2, 1, 0]], [[0, 1, 99], [1, 0, 99], [99, 99, 99]]])
    types = torch.tensor([[1] * 4 + [2] * 4 + [3] * 4, [2] * 5 + [3] * 4 + [0] * 3])
    hops = torch.tensor([[0] * 4 + [1] * 4 + [2] * 4, [0] * 5 + [1] * 4 + [0] * 3])
    return dict(input_ids=ids, attention_mask=mask, type_ids=types, hop_ids=hops,
                node_index=node_index, node_distances=dist)


def encode(model, **batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).embeddings


@pytest.mark.parametrize("switch,field", [("use_type_embeddings", "type_ids"), ("use_position_embeddings", "hop_ids")])
def test_graph_embeddings_change_the_output_only_when_switched_on(switch, field):
    batch = batch_of_two()
    changed = dict(batch, **{field: batch[field].roll(1, dims=1)})
    torch.manual_seed(0)
    on = PLM4JobEncoder(tiny_config(**{switch: True}))
    # graph embeddings start at zero (a fresh model is the text-only one): give them values
    assert on.embeddings.types.weight.abs().max() == 0 == on.embeddings.hops.weight.abs().max()
    with torch.no_grad():
        for emb in (on.embeddings.types, on.embeddings.hops):
            emb.weight.normal_(0, 0.5)
    assert not torch.allclose(encode(on, **batch), encode(on, **changed), atol=1e-4)
    torch.manual_seed(0)
    off = PLM4JobEncoder(tiny_config(**{switch: False}))
    assert torch.equal(encode(off, **batch), encode(off, **changed))


def test_all_switches_off_is_the_text_only_encoder():
    torch.manual_seed(0)
    full = PLM4JobEncoder(tiny_config())
    with torch.no_grad():  # as if trained: graph embeddings away from their zero start
        full.embeddings.types.weight.normal_(0, 0.5)
        full.embeddings.hops.weight.normal_(0, 0.5)
    text_only = PLM4JobEncoder(
        tiny_config(use_type_embeddings=False, use_position_embeddings=False, use_attention_alignment=False)
    )
    missing = text_only.load_state_dict(full.state_dict(), strict=False).unexpected_keys
    assert sorted(missing) == ["embeddings.hops.weight", "embeddings.types.weight", "proximity.bias"]
    batch = batch_of_two()
    plain = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    # the text-only model needs no graph inputs and ignores them when given
    assert torch.equal(encode(text_only, **plain), encode(text_only, **batch))
    # the full model differs, and differs exactly by its graph terms: zero them and they agree
    assert not torch.allclose(encode(full, **batch), encode(text_only, **plain), atol=1e-4)
    with torch.no_grad():
        full.embeddings.types.weight.zero_()
        full.embeddings.hops.weight.zero_()
        full.proximity.bias.zero_()
    torch.testing.assert_close(encode(full, **batch), encode(text_only, **plain), atol=1e-5, rtol=0)


def test_attention_alignment_steers_attention_toward_near_nodes():
    torch.manual_seed(0)
    aligned = PLM4JobEncoder(tiny_config(use_attention_alignment=True)).eval()
    plain = PLM4JobEncoder(tiny_config(use_attention_alignment=False)).eval()
    plain.load_state_dict(aligned.state_dict(), strict=False)
    batch = batch_of_two()
    with torch.no_grad():
        a = aligned(**batch, output_attentions=True).attentions[0]
        p = plain(**batch, output_attentions=True).attentions[0]
    assert not torch.allclose(a, p, atol=1e-4)
    # [CLS] of example 0 (ego node, tokens 0-3): head 0 has the steepest prior, so its
    # attention mass on the ego's own tokens rises and on the 2-hop node's tokens falls
    assert a[0, 0, 0, :4].sum() > p[0, 0, 0, :4].sum() + 0.1
    assert a[0, 0, 0, 8:].sum() < p[0, 0, 0, 8:].sum()
    # the last head starts global: no bias, same attention as without alignment
    torch.testing.assert_close(a[:, -1], p[:, -1])
    # padding keys get no attention either way
    assert a[1, :, :, 9:].abs().max() == 0


def test_encoder_rejects_missing_graph_inputs():
    model = PLM4JobEncoder(tiny_config())
    batch = batch_of_two()
    with pytest.raises(ValueError, match="type_ids"):
        model(input_ids=batch["input_ids"])


# ---- training, metrics, checkpoints ---------------------------------------------------------

FIELDS = {
    "data": ["python", "sql", "statistics", "spark"],
    "nursing": ["patient care", "triage", "medication", "charting"],
    "sales": ["negotiation", "crm", "prospecting", "closing"],
    "welding": ["mig", "tig", "blueprints", "fabrication"],
}


def toy_market(seed=0, members_per_field=8, jobs_per_field=6):
    """Members apply to jobs in their own field: learnable from text and graph alike."""
    rng = np.random.default_rng(seed)
    g = HeteroGraph()
    links = []
    for f, skills in FIELDS.items():
        c = add_company(g, {"company_id": f"c-{f}", "name": f"{f.title()} Corp", "industry": f})
        jobs = [
            add_job(g, {"job_id": f"{f}-j{i}", "company_id": f"c-{f}", "title": f"{f} specialist {i}",
                        "location": "Lyon", "seniority": "mid", "skills": list(rng.permutation(skills)[:3])})
            for i in range(jobs_per_field)
        ]
        assert (c in g) and all(j in g for j in jobs)
        for i in range(members_per_field):
            m = add_member(g, {"member_id": f"{f}-m{i}", "title": f"{f} worker", "location": "Lyon",
                               "seniority": "mid", "skills": list(rng.permutation(skills)[:2])})
            for j in rng.choice(jobs, size=2, replace=False):
                g.add_edge(m, j, "apply", time=float(i))
                links.append(Link(m, j))
    return g, links


@pytest.fixture(scope="module")
def toy():
    g, links = toy_market()
    tokenizer = train_tokenizer((n.text for n in g.nodes.values()), vocab_size=200)
    builder = PromptBuilder(tokenizer, PromptSpec(max_len=48, ego_tokens=16, neighbour_tokens=6, fanout=(3, 2)))
    builder.warm([n.text for n in g.nodes.values()])
    return g, links, tokenizer, builder


def toy_model(tokenizer, **switches):
    torch.manual_seed(0)
    return PLM4JobEncoder(EncoderConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
        max_position_embeddings=48, embedding_dim=16, dropout=0.0, **switches,
    ))


@pytest.mark.slow
def test_tiny_training_run_lowers_contrastive_loss(toy):
    g, links, tokenizer, builder = toy
    model = toy_model(tokenizer)
    cfg = TrainConfig(max_steps=40, batch_size=16, lr=3e-3, warmup_steps=5, seed=0, device="cpu")
    result = train_link_prediction(model, builder, g, links, cfg, progress=False)
    assert result.steps == 40 and result.examples == 640
    first, last = result.mean_loss(first=5), result.mean_loss(last=5)
    assert last < 0.7 * first, (first, last)


def test_training_is_deterministic_for_a_seed(toy):
    g, links, tokenizer, builder = toy
    cfg = TrainConfig(max_steps=4, batch_size=8, seed=3, device="cpu")
    runs = [train_link_prediction(toy_model(tokenizer), builder, g, links, cfg, progress=False) for _ in range(2)]
    assert runs[0].losses == runs[1].losses


def test_training_stops_at_its_time_budget(toy):
    g, links, tokenizer, builder = toy
    model = toy_model(tokenizer)
    cfg = TrainConfig(max_steps=10_000, time_budget_s=0.0, batch_size=8, device="cpu")
    assert train_link_prediction(model, builder, g, links, cfg, progress=False).steps == 0


def test_checkpoint_round_trip_gives_identical_embeddings(toy, tmp_path):
    g, links, tokenizer, builder = toy
    model = toy_model(tokenizer)
    ids = [node_key("member", "data-m0"), node_key("job", "sales-j1"), node_key("company", "c-nursing")]
    before = embed_nodes(model, builder, g, ids)
    save_checkpoint(tmp_path / "enc", model, tokenizer, builder.spec, {"metrics": {"recall@100": 0.5}})
    assert (tmp_path / "enc" / "README.md").read_text().count("recall@100") == 1
    model2, builder2 = load_checkpoint(tmp_path / "enc", device="cpu")
    assert builder2.spec == builder.spec
    assert builder2.tokenizer("nursing triage")["input_ids"] == tokenizer("nursing triage")["input_ids"]
    np.testing.assert_array_equal(embed_nodes(model2, builder2, g, ids), before)


def test_embedder_adapter_embeds_index_records(toy, tmp_path):
    g, links, tokenizer, builder = toy
    model = toy_model(tokenizer)
    embedder = EgoGraphEmbedder(model, builder, g)
    members = [{"member_id": "data-m0", "title": "ignored: already in the graph", "location": "x", "seniority": "mid"}]
    new_job = {"job_id": "new-1", "company_id": "c-data", "title": "data analyst", "location": "Lyon",
               "seniority": "mid", "skills": ["sql"]}
    from index.embedder import Embedder
    from index.records import as_job

    assert isinstance(embedder, Embedder)  # the index's protocol
    jobs = [{"job_id": "data-j0"}, as_job(new_job)]  # dicts or the index's own records
    zm, zj = embedder.embed_members(members), embedder.embed_jobs(jobs)
    assert zm.shape == (1, 16) and zj.shape == (2, 16) and zj.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(zj, axis=1), 1.0, rtol=1e-5)
    # a job the graph had not seen joins it, linked to its company
    assert "Company: Data Corp" in g.nodes[node_key("job", "new-1")].text
    assert node_key("company", "c-data") in g.neighbours(node_key("job", "new-1"))
    np.testing.assert_allclose(zj[0], embed_nodes(model, builder, g, [node_key("job", "data-j0")])[0], atol=1e-6)


def test_info_nce_treats_repeated_jobs_as_positives():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    scale = torch.tensor(np.log(20.0))
    # two members applied to the same job: their rows must not count it as a negative
    same = info_nce(z, z, ["m1", "m2", "m3"], ["j1", "j1", "j2"], scale)
    distinct = info_nce(z, z, ["m1", "m2", "m3"], ["j1", "j9", "j2"], scale)
    assert same < 0.01 < distinct


def test_recall_at_k_counts_held_out_jobs_in_the_top_k_and_skips_seen_ones():
    members = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    jobs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.0, 1.0]], np.float32)
    job_ids = ["a", "b", "c", "d"]
    targets = [("m1", "b"), ("m2", "c"), ("m2", "a")]
    assert recall_at_k(members, ["m1", "m2"], jobs, job_ids, targets, k=1) == 0.0
    # m1 already saw "a": it leaves the ranking, so "b" moves to the top
    got = recall_at_k(members, ["m1", "m2"], jobs, job_ids, targets, k=1, seen={"m1": {"a"}, "m2": {"d"}})
    assert got == pytest.approx(2 / 3)
