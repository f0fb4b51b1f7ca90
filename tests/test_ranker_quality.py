"""bench/ranker_quality.py: the LR + text features, the held-out task's labels, the
protocol's checks against a checkpoint's ranker.json, and the plain table."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from bench import ranker_quality as Q
from serving.training.training_examples import Example
from tests.factories import job, profile


def example(task="click", label=0, slate="s1", job_id="j1", member_id="m1", about="I build pipelines.",
            title="Senior Data Engineer", description="Build streaming systems.", query=None, t=0.0):
    return Example(task=task, label=label, member_id=member_id, slate_id=slate, request_time=t,
                   job=job(job_id, title=title, description=description),
                   profile=profile(member_id, about=about), history=(), query=query)


# ---- LR + text features ------------------------------------------------------------------


def test_text_features_on_a_tiny_example():
    a = example(about="looking to move into management", title="Engineering Manager",
                description="Lead a team of engineers.", job_id="j1")
    b = example(about="only remote work please", title="Data Engineer", description="Remote pipelines.",
                job_id="j2", member_id="m2", slate="s2")
    text = Q.TextFeatures(pair_buckets=2 ** 10).fit([a, b])
    vocab = text.tfidf.vocabulary_
    x = text.transform([a, b]).toarray()
    n = len(vocab)
    assert x.shape == (2, 3 * n + 2 ** 10)
    member, job_part, product, pairs = x[:, :n], x[:, n:2 * n], x[:, 2 * n:3 * n], x[:, 3 * n:]
    # b's profile title and job title share "engineer": it matches on both sides; a's job says "engineering"
    assert member[1, vocab["engineer"]] > 0 and job_part[1, vocab["engineer"]] > 0 and product[1, vocab["engineer"]] > 0
    assert product[0, vocab["engineer"]] == 0
    np.testing.assert_allclose(product, member * job_part)
    # "management" (member's about) never appears in a job text: no match column fires for it
    assert "management" not in vocab or product[0, vocab["management"]] == 0
    # one pair per (about word, job title word): 5 x 2 for a, 4 x 2 for b, at most, after hashing; l2-normed
    assert 8 <= np.count_nonzero(pairs[0]) <= 10 and 6 <= np.count_nonzero(pairs[1]) <= 8
    np.testing.assert_allclose(np.linalg.norm(pairs, axis=1), 1.0, rtol=1e-6)
    assert "management|manager" in {f"{m}|{t}" for m in Q.member_intent_words(a) for t in Q.words(a.job.title)}


def test_design_shares_rows_between_tasks_and_drops_unused_columns():
    exs = [example(task, label=0, job_id=j) for j in ("j1", "j2") for task in ("click", "save")]
    bm25 = Q.BM25([Q.words(Q.job_text(ex)) for ex in exs])
    text = Q.TextFeatures(pair_buckets=2 ** 10).fit(exs)
    design = Q.Design.build(exs, bm25, text)
    assert design.hand.shape[0] == 2 and design.rows(exs).tolist() == [0, 0, 1, 1]
    slim = design.keep_columns(design.used_columns())
    assert slim.text.shape[1] < design.text.shape[1] and slim.text.nnz == design.text.nnz


def test_held_out_task_is_engaged_per_impression():
    # impression 1 (j1): clicked, not saved; impression 2 (j2): applied without a click
    exs = [example("click", 1, job_id="j1"), example("save", 0, job_id="j1"), example("apply", 0, job_id="j1"),
           example("dismiss", 0, job_id="j1"),
           example("click", 0, job_id="j2"), example("save", 0, job_id="j2"), example("apply", 1, job_id="j2"),
           example("dismiss", 0, job_id="j2"),
           example("click", 0, job_id="j3"), example("save", 0, job_id="j3"), example("apply", 0, job_id="j3"),
           example("dismiss", 1, job_id="j3")]
    interest = Q.with_held_out_task(exs)
    assert [(ex.job.job_id, ex.label, ex.task) for ex in interest] == [("j1", 1, "click"), ("j2", 1, "click"),
                                                                       ("j3", 0, "click")]


# ---- protocol checks -----------------------------------------------------------------------


def checkpoint(tmp_path, **meta):
    (tmp_path / "ranker.json").write_text(json.dumps(meta))
    return str(tmp_path)


def args(ranker, **kw):
    base = dict(ranker=[ranker] if ranker else [], members=None, days=None, seeds=None, allow_mismatch=False,
                max_groups=None, text_share=None)
    return SimpleNamespace(**{**base, **kw})


def test_protocol_defaults_to_the_checkpoint(tmp_path):
    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3, 4, 5], seed=3)
    p = Q.resolve_protocol(args(path))
    assert (p.members, p.days, p.seeds, p.warnings) == (400, 18, [3, 4, 5], [])
    old = checkpoint(tmp_path, sim_members=400, sim_days=18, seed=7)  # today's trainer: one seed
    assert Q.resolve_protocol(args(old)).seeds == [7]


def test_protocol_refuses_a_contradicting_command_line(tmp_path):
    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3])
    with pytest.raises(SystemExit, match="--members 300 contradicts"):
        Q.resolve_protocol(args(path, members=300))
    p = Q.resolve_protocol(args(path, members=300, days=25, allow_mismatch=True))
    assert len(p.warnings) == 2 and any(line.startswith("WARNING") for line in p.lines())


def test_protocol_checks_the_share_of_text_stated_wishes(tmp_path):
    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3], sim_text_share=0.35)
    assert Q.resolve_protocol(args(path)).text_share == 0.35
    with pytest.raises(SystemExit, match="--text-share 0.0 contradicts"):
        Q.resolve_protocol(args(path, text_share=0.0))
    assert Q.resolve_protocol(args(None, text_share=0.0)).text_share == 0.0  # baselines without wishes


def test_protocol_refuses_a_checkpoint_trained_without_graph_signals_on_a_marketplace_with_them(tmp_path):
    """A ranker.json written before career moves and communities existed was trained on
    a marketplace without them: by default the protocol simulates that marketplace, and
    asking for the graph signals is refused unless --allow-mismatch."""
    legacy = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3], sim_text_share=0.35)
    p = Q.resolve_protocol(args(legacy))
    assert p.signals == {"career_move_share": 0.0, "community_strength": 0.0} and not p.warnings
    with pytest.raises(SystemExit, match="--career-move-share 0.25 contradicts"):
        Q.resolve_protocol(args(legacy, career_move_share=0.25))
    with pytest.raises(SystemExit, match="--community-strength 1.0 contradicts"):
        Q.resolve_protocol(args(legacy, community_strength=1.0))
    p = Q.resolve_protocol(args(legacy, career_move_share=0.25, community_strength=1.0, allow_mismatch=True))
    assert p.signals == {"career_move_share": 0.25, "community_strength": 1.0} and len(p.warnings) == 2


def test_protocol_follows_a_checkpoint_trained_with_graph_signals(tmp_path):
    from serving.training.ranker_pipeline import sim_meta
    from streams.simulator import MarketplaceConfig

    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3], **sim_meta())
    default = MarketplaceConfig()
    assert sim_meta() == {"sim_text_share": default.text_preference_share,
                          "sim_career_move_share": default.career_move_share,
                          "sim_community_strength": default.community_strength}
    p = Q.resolve_protocol(args(path))
    assert p.signals == {"career_move_share": default.career_move_share,
                         "community_strength": default.community_strength}
    with pytest.raises(SystemExit, match="--career-move-share 0.0 contradicts"):
        Q.resolve_protocol(args(path, career_move_share=0.0))
    assert sim_meta(career_move_share=0, community_strength=0)["sim_career_move_share"] == 0
    # no ranker: the simulator's own settings
    assert Q.resolve_protocol(args(None)).signals == p.signals


def test_protocol_never_lets_held_out_days_overlap_training(tmp_path):
    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3])
    with pytest.raises(SystemExit, match="trained on its days 0-13"):
        Q.resolve_protocol(args(path, days=14, allow_mismatch=True))
    # a seed the ranker never saw is a new marketplace: allowed, and said
    p = Q.resolve_protocol(args(path, seeds=[3, 9]))
    assert any("never trained on seeds [9]" in w for w in p.warnings)


def test_protocol_without_a_ranker_uses_three_seeds():
    p = Q.resolve_protocol(args(None))
    assert (p.members, p.days, p.seeds) == (500, 21, [0, 1, 2])


# ---- output --------------------------------------------------------------------------------


def test_verdict_needs_more_than_one_se():
    assert Q.verdict(0.03, 0.02) == "better" and Q.verdict(-0.03, 0.02) == "worse"
    assert Q.verdict(0.01, 0.02) == "tie" and Q.verdict(float("nan"), 0.02) == "n/a"


def test_plain_table_keeps_every_character():
    long_name = "a-ranker-with-a-very-long-checkpoint-name held-out phrasing"
    text = Q.plain_table(("task", "segment", "method", "AUC"), [["click", "all", long_name, "0.712"]])
    assert long_name in text and "0.712" in text and "…" not in text


# ---- the ranker's rows ---------------------------------------------------------------------


def fake_market():
    held = [example(task, label=int(task == "click" and j == "j1"), job_id=j) for j in ("j1", "j2")
            for task in ("click", "save", "apply", "dismiss")]
    return SimpleNamespace(held=Q.by_task(held), seed=0)


def test_ranker_rows_with_the_ask_keyword(monkeypatch):
    calls = []

    def score_examples(ranker, examples, prompts, phrasing=0, progress=True, ask=None):
        calls.append((phrasing, ask, examples[0].task))
        return np.arange(len(examples), dtype=np.float32)

    monkeypatch.setattr(Q, "score_examples", score_examples)
    monkeypatch.setattr(Q, "PromptCache", lambda ranker: None)
    out = Q.ranker_scores(object(), "r", fake_market(), zero_shot=True)
    assert set(out) == {"r", "r held-out phrasing", "r click question", "r held-out task"}
    assert (0, "interest", "click") in calls and set(out["r held-out task"]) == {"interest"}


def test_ranker_rows_without_the_ask_keyword_skip_the_held_out_task(monkeypatch):
    def score_examples(ranker, examples, prompts, phrasing=0, progress=True):
        return np.zeros(len(examples), dtype=np.float32)

    monkeypatch.setattr(Q, "score_examples", score_examples)
    monkeypatch.setattr(Q, "PromptCache", lambda ranker: None)
    assert not Q.ranker_has_ask()
    out = Q.ranker_scores(object(), "r", fake_market(), zero_shot=True)
    assert "r held-out task" not in out and "r held-out phrasing" in out


def test_protocol_holds_out_what_the_trainer_held_out(tmp_path):
    path = checkpoint(tmp_path, sim_members=400, sim_days=18, sim_seeds=[3], sim_held_out_days=3)
    p = Q.resolve_protocol(args(path))
    assert p.held_out_days == 3 and "held out: days 15-17" in p.lines()[1]


def test_pooled_rows_compare_with_the_reference_and_split_cold_from_warm():
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    pool = Q.TaskPool("click", y, np.array([f"1/m{i % 40}" for i in range(n)]),
                      np.array([f"1/m{i % 40}/{i % 3}" for i in range(n)]), np.arange(n) < 100,
                      {Q.REFERENCE: y + rng.normal(size=n), "copy": None, "noise": rng.normal(size=n)})
    pool.scores["copy"] = pool.scores[Q.REFERENCE].copy()
    rows = {(r["segment"], r["method"]): r for seg in Q.SEGMENTS for r in Q.evaluate_segment(pool, seg)}
    assert rows[("all", "copy")]["verdict"] == "tie" and rows[("all", "copy")]["vs_reference_se"] == 0
    assert rows[("all", "noise")]["verdict"] == "worse"
    assert "verdict" not in rows[("all", Q.REFERENCE)]
    assert rows[("cold", "noise")]["n"] == 100 and rows[("warm", "noise")]["n"] == 300


def test_a_probe_scored_on_a_sample_is_compared_on_that_sample():
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    ref = y + rng.normal(size=n)
    probe = np.where(np.arange(n) % 2 == 0, ref, np.nan)  # the reference itself, on half the examples
    pool = Q.TaskPool("click", y, np.array([f"1/m{i % 40}" for i in range(n)]),
                      np.array([f"1/m{i % 40}/{i % 3}" for i in range(n)]), np.arange(n) < 100,
                      {Q.REFERENCE: ref, "r": ref.copy(), "r held-out phrasing": probe})
    rows = {r["method"]: r for r in Q.evaluate_segment(pool, "all")}
    assert rows[Q.REFERENCE]["n"] == 400 and rows["r held-out phrasing"]["n"] == 200
    assert rows["r held-out phrasing"]["vs_reference"] == 0 and rows["r held-out phrasing"]["verdict"] == "tie"
    kept = Q.retention(pool, "r")
    assert kept["retention"] == pytest.approx(1.0)  # same scores on the sample: all of the lift kept


def test_zero_shot_sample_keeps_whole_slates():
    exs = [example("click", job_id=f"j{j}", slate=f"s{s}") for s in range(10) for j in range(3)]
    keep = Q.zero_shot_sample(exs, 4, seed=0)
    chosen = {ex.slate_id for ex, k in zip(exs, keep) if k}
    assert len(chosen) == 4 and keep.sum() == 12
    assert Q.zero_shot_sample(exs, None, seed=0).all()


def test_every_held_out_example_has_the_truth_at_its_request():
    protocol = Q.Protocol(seeds=[1], members=30, days=6, held_out_days=2, max_groups=None, trained=[],
                          text_share=0.35)
    market = Q.Market.simulate(1, protocol)
    held = [ex for exs in market.held.values() for ex in exs]
    assert held and market.truth.at
    ceilings = {ex.task: [] for ex in held}
    for ex in held:
        ceilings[ex.task].append(market.truth.ceiling(ex))
    assert all(0 < v <= 1 for v in ceilings["click"]) and all(-1 <= v < 0 for v in ceilings["dismiss"])
    # only the held-out days are recorded
    assert min(day for _, _, day in market.truth.at) * 86400 >= market.truth.since - 86400


def test_held_out_task_is_click_when_nothing_engages_without_a_click():
    clicked = [example("click", 1), example("save", 0), example("apply", 0), example("dismiss", 0)]
    applied = [example("click", 0), example("save", 0), example("apply", 1), example("dismiss", 0)]
    assert Q.held_out_task_is_click([SimpleNamespace(held=Q.by_task(clicked))])
    assert not Q.held_out_task_is_click([SimpleNamespace(held=Q.by_task(applied))])


def test_the_trainer_records_the_marketplace_signals_in_the_checkpoint(monkeypatch):
    """What `hirestream train ranker` writes to ranker.json is what the protocol checks."""
    import serving.training.ranker_pipeline as pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "train_ranker", lambda *a, **kw: seen.update(kw["extra_meta"]))
    split = pipeline.SimulatedSplit([], [], 0.0, "empty")
    pipeline.train_ranker_on_simulator(split=split, n_members=40, days=9, seed=4, threads=1,
                                       career_move_share=0.0, community_strength=0.0)
    assert seen == {"sim_members": 40, "sim_days": 9, "sim_seeds": [4], "sim_text_share": 0.35,
                    "sim_career_move_share": 0.0, "sim_community_strength": 0.0}
    trained = Q.TrainedOn("x", 40, 9, [4], 4, 0.35, seen["sim_career_move_share"], seen["sim_community_strength"])
    assert (trained.career_move_share, trained.community_strength) == (0.0, 0.0)


def test_extrapolation_meets_the_reference_where_the_line_does(tmp_path):
    """AUC = 0.5 + 0.02 ln(candidates) through the points: the LR + text's 0.70 is met at
    e^10 candidates, and at 1,000 candidates a minute that takes e^10 / 1000 minutes; a flat
    curve buys nothing measurable."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "ranker.json").write_text(json.dumps({"train_candidates": 60_000, "train_seconds": 3600}))
    rising = [dict(method="r", task="click", candidates=n, auc=0.5 + 0.02 * math.log(n), se=0.01)
              for n in (1_000, 4_000, 16_000)]
    flat = [dict(method="r", task="apply", candidates=n, auc=0.6 + (0.004 if n == 4_000 else 0), se=0.02)
            for n in (1_000, 4_000, 16_000)]
    results = [dict(method=Q.REFERENCE, segment="all", task=t, auc=0.70) for t in ("click", "apply")]
    rows = {r["task"]: r for r in Q.extrapolate(rising + flat, results, [Q.TrainedOn.read(str(tmp_path / "r"))])}
    assert rows["click"]["candidates_needed"] == pytest.approx(math.exp(10), rel=1e-6)
    assert rows["click"]["minutes_needed"] == pytest.approx(math.exp(10) / 1000, rel=1e-6)
    assert rows["click"]["slope_per_doubling"] == pytest.approx(0.02 * math.log(2), rel=1e-6)
    assert "candidates_needed" not in rows["apply"]
    assert "no measurable gain" in Q.extrapolation_lines([rows["apply"]])[0]
