"""One labelling of slates and outcomes (`serving.slates`) for training and replay:
the rules themselves, and both readers of a log agreeing on them."""
from __future__ import annotations

from serving.evaluation.eventlog import as_records
from serving.evaluation.replay import read_future
from serving.slates import OUTCOME_WINDOW_S, SLATE_GAP_S, Slate
from serving.training.training_examples import build_examples
from tests import factories as f

H = 3600.0


def _log():
    """m1 sees j1, j2 (j1 twice) on recommendations; clicks j1 at once, applies to j2 two
    days later; searches, then sees j3 on search and saves it 4 days later (too late);
    a view an hour after the first slate opens a second slate."""
    return [
        f.job_posted("p1", 0, job_id="j1"), f.job_posted("p2", 0, job_id="j2"), f.job_posted("p3", 0, job_id="j3"),
        f.member_upserted("u1", 0.1),
        f.action("v1", "view", 1.0, job_id="j1"),
        f.action("v2", "view", 1.1, job_id="j2"),
        f.action("c1", "click", 1.15, job_id="j1"),
        f.action("v3", "view", 1.2, job_id="j1"),  # j1 again in the same slate
        f.action("s1", "search", 1.3, job_id=None, query="streaming data", surface="search"),
        f.action("v4", "view", 1.35, job_id="j3", surface="search"),  # search slate
        f.action("v5", "view", 2.5, job_id="j2"),  # > 30 min after v3: a new recommendations slate
        f.action("a1", "apply", 1.0 + 48, job_id="j2"),
        f.action("sv", "save", 1.35 + 4 * 24, job_id="j3"),  # past the 3-day window
    ]


def _viewed(log):
    """The examples of viewed jobs (hire examples come from applications, not slates)."""
    return [ex for ex in build_examples(log) if ex.task != "hire"]


def _labels(examples, task):
    return {(ex.slate_id, ex.job.job_id): ex.label for ex in examples if ex.task == task}


def test_slates_break_on_gaps_carry_the_query_and_count_each_job_once():
    examples = _viewed(_log())
    slates = {}
    for ex in examples:
        slates.setdefault(ex.slate_id, []).append(ex.job.job_id)
    assert {s: list(dict.fromkeys(jobs)) for s, jobs in slates.items()} == {
        "m1/recommendations/v1": ["j1", "j2"], "m1/search/v4": ["j3"], "m1/recommendations/v5": ["j2"]}
    clicks = [ex for ex in examples if ex.task == "click" and ex.slate_id == "m1/recommendations/v1"]
    assert [ex.job.job_id for ex in clicks] == ["j1", "j2"]  # j1's second view is not a second example
    assert {ex.query for ex in examples if ex.task == "search_relevance"} == {"streaming data"}
    assert SLATE_GAP_S == 30 * 60 and OUTCOME_WINDOW_S == 3 * 86400


def test_an_action_counts_within_the_window_after_the_job_was_shown():
    examples = _viewed(_log())
    assert _labels(examples, "click") == {("m1/recommendations/v1", "j1"): 1, ("m1/recommendations/v1", "j2"): 0,
                                          ("m1/search/v4", "j3"): 0, ("m1/recommendations/v5", "j2"): 0}
    apply = _labels(examples, "apply")
    assert apply[("m1/recommendations/v1", "j2")] == 1 and apply[("m1/recommendations/v5", "j2")] == 1
    assert _labels(examples, "save")[("m1/search/v4", "j3")] == 0  # four days later: outside the window
    assert _labels(examples, "search_relevance") == {("m1/search/v4", "j3"): 0}


def test_a_click_before_the_job_was_shown_is_not_its_outcome():
    """The click on j2 comes after the slate opened but before j2 was shown in it."""
    log = [f.job_posted("p1", 0, job_id="j1"), f.job_posted("p2", 0, job_id="j2"), f.member_upserted("u1", 0.1),
           f.action("v1", "view", 1.0, job_id="j1"), f.action("c2", "click", 1.05, job_id="j2"),
           f.action("v2", "view", 1.1, job_id="j2")]
    assert _labels(_viewed(log), "click") == {("m1/recommendations/v1", "j1"): 0,
                                                     ("m1/recommendations/v1", "j2"): 0}


def test_replay_reads_the_same_slates_and_labels_as_training():
    """Replay's evaluation points are the training examples' slates, job for job and
    label for label, so a model is evaluated on what it was trained to predict."""
    log = _log()
    examples = _viewed(log)
    fut = read_future(as_records(log), SLATE_GAP_S, OUTCOME_WINDOW_S)
    replayed = [p for points in fut.points.values() for p in points if isinstance(p, Slate)]
    assert {s.slate_id: s.shown for s in replayed} == {
        s: list(dict.fromkeys(ex.job.job_id for ex in examples if ex.slate_id == s)) for s in {ex.slate_id for ex in examples}}
    for task in ("click", "save", "apply", "dismiss"):
        assert {(s.slate_id, j): fut.outcomes.label(task, s.member_id, j, s.shown_at[j])
                for s in replayed for j in s.shown} == _labels(examples, task)
