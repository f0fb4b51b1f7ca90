"""Replay of a views-only log (a job board's export): the view and dwell tasks on slates
built from the open catalog, checked against a hand computation, and the loud warning
for a task the log holds no positives for."""
from __future__ import annotations

import math

import pytest

from serving.evaluation.replay import ReplayConfig, Variant, replay, sampled_warnings
from serving.evaluation.report import NO_POSITIVES, headline_rows, markdown, rich_table
from serving.online.scorer import BM25Scorer, PopularityScorer
from streams.state import MemberState
from tests import factories as f

UNKNOWN = dict(occupation="", skills=[], location="", seniority="unknown", years_experience=None, about="")


def _log():
    """Three jobs; m2 views j2 twice and m3 views j3 once (popularity: j2 > j3 > j1);
    then m1 (a nurse, nothing else known) views j1 (open-ended: no end time) and, five
    minutes later, j3 for 60 s. No clicks: the log has no impressions."""
    job = dict(occupation="", skills=[], location="", seniority="unknown", description="")
    return [
        f.job_posted("p1", 0, job_id="j1", title="Registered Nurse Band Five", **job),
        f.job_posted("p2", 0, job_id="j2", title="Software Developer", **job),
        f.job_posted("p3", 0, job_id="j3", title="Nurse Practitioner", **job),
        f.member_upserted("u1", 0, member_id="m1", title="Nurse", **UNKNOWN),
        f.action("a", "view", 1.0, member_id="m2", job_id="j2"),
        f.action("b", "view", 1.1, member_id="m2", job_id="j2"),
        f.action("c", "view", 1.2, member_id="m3", job_id="j3"),
        f.action("v1", "view", 2.0, member_id="m1", job_id="j1"),
        f.action("v2", "view", 2.0 + 5 / 60, member_id="m1", job_id="j3", dwell_s=60.0),
    ]


CONFIG = ReplayConfig(tasks=("view", "dwell", "apply"), engine_sample=0.0, min_positives=20)


@pytest.fixture(scope="module")
def result():
    return replay(_log(), [Variant("popularity", PopularityScorer()), Variant("bm25", BM25Scorer())], CONFIG)


def _ndcg(ranked_labels):
    dcg = sum(y / math.log2(i + 2) for i, y in enumerate(ranked_labels))
    ideal = sorted(ranked_labels, reverse=True)
    return dcg / sum(y / math.log2(i + 2) for i, y in enumerate(ideal))


def _all(result, variant, task):
    return result.metrics[variant]["all"][task]["all"]


def test_a_log_without_clicks_is_evaluated_on_slates_from_views(result):
    assert result.config.slates == "views"
    assert result.replay["points"] == {"slate": 1, "without_profile": 2}  # m2, m3: no profile, not evaluated
    assert "built from views" in markdown(result, {})


def test_view_task_metrics_agree_with_the_hand_computation(result):
    # One slate at 2 h, scored before v1: candidates are the open jobs j1, j2, j3; the
    # next views within the window are j1 and j3 (labels 1, 0, 1 in that order).
    # popularity: views so far j2=2, j3=1, j1=0 -> order j2, j3, j1
    pop = _all(result, "popularity", "view")
    assert (pop["impressions"], pop["positives"]) == (3, 2)
    assert pop["auc"] == 0.0  # both positives below the one negative
    assert pop["ndcg@10"] == pytest.approx(_ndcg([0, 1, 1]))  # (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    assert pop["mrr"] == 0.5
    # BM25: the member's one word "nurse" is in j1 (4 words) and j3 (2 words); the
    # shorter document scores higher -> order j3, j1, j2
    bm = _all(result, "bm25", "view")
    assert (bm["auc"], bm["ndcg@10"], bm["mrr"]) == (1.0, pytest.approx(1.0), 1.0)


def test_dwell_is_a_view_that_lasted_the_threshold(result):
    # only j3 was viewed for 30 s or more (j1's view has no end)
    pop = _all(result, "popularity", "dwell")
    assert pop["positives"] == 1
    assert pop["auc"] == 0.5  # j3 below j2, above j1
    assert pop["ndcg@10"] == pytest.approx(_ndcg([0, 1, 0])) and pop["mrr"] == 0.5
    assert _all(result, "bm25", "dwell")["mrr"] == 1.0
    longer = replay(_log(), [Variant("bm25", BM25Scorer())], ReplayConfig(tasks=("dwell",), engine_sample=0.0,
                                                                          dwell_s=61.0))
    assert _all(longer, "bm25", "dwell")["positives"] == 0


def test_a_task_without_positives_warns_in_the_table_and_the_report(result):
    warnings = result.replay["warnings"]
    assert any("'apply'" in w and "NO POSITIVES" in w for w in warnings)
    assert any("'view'" in w and "only 2 positives" in w and "fewer than 20" in w for w in warnings)
    rows = {r[0]: r for r in headline_rows(result)}
    apply_auc = 1 + 2 * CONFIG.tasks.index("apply")
    assert rows["bm25"][apply_auc] == rows["bm25"][apply_auc + 1] == NO_POSITIVES  # not a dash
    report = markdown(result, {})
    assert "Warnings" in report and "NO POSITIVES in 3 impressions" in report
    assert "NO POSITIVES" in rich_table(result).caption


def test_a_model_scored_on_a_sample_gets_its_own_warning(result):
    """A slow model (the LM ranker) scores a sample of the points: its own few
    positives, not the first model's, say whether its row is noise."""
    sampled = replay(_log(), [Variant("popularity", PopularityScorer()), Variant("bm25", BM25Scorer(), sample=0.0)],
                     CONFIG)
    warnings = sampled.replay["warnings"]
    assert "bm25: task 'view': no evaluation points at all" in warnings
    assert not any(w.startswith("popularity:") for w in warnings)
    cell = lambda n, p: {"all": {"view": {"all": {"impressions": n, "positives": p}}}}  # noqa: E731
    metrics = {"popularity": cell(1158, 48), "ranker": cell(105, 3), "bm25": cell(1158, 48)}
    assert sampled_warnings(metrics, ["popularity", "ranker", "bm25"], ("view",), 20) == [
        "ranker: task 'view': only 3 positives in 105 impressions (fewer than 20): its metrics are noise"]
    # every model on every point: the first model's warnings already speak for all
    assert not any(w.startswith("bm25:") for w in result.replay["warnings"])


def test_views_make_a_member_warm():
    state = MemberState("m1", counts={"view": 3})
    assert state.n_interactions == 3


def test_the_language_model_ranker_answers_the_tasks_a_views_log_holds():
    """No training row asks about views, yet the one ranker must score them (zero-shot
    questions, `models.verbalizer.HELD_OUT_TASKS`); it crashed the replay before."""
    from tests.scoring_helpers import tiny_lm_scorer

    lm = replay(_log(), [Variant("tiny-lm", tiny_lm_scorer("tiny-lm"))], CONFIG)
    for task in ("view", "dwell"):
        m = _all(lm, "tiny-lm", task)
        assert m["impressions"] == 3 and 0.0 <= m["auc"] <= 1.0
