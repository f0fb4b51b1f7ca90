"""serving.training.ranker_pipeline.training_rows: one row per member-day, every task of every
job shown that day, a prefix no newer than the day's first slate, and a row cap."""
import math
import random

import pytest

from serving.training.ranker_pipeline import (
    ROWS_PER_CPU_MINUTE, TRAIN_PHRASINGS, PromptCache, negative_log_keep, rows_readable_in, training_rows,
)
from serving.training.training_examples import Example
from tests.factories import job, profile

DAY = 86_400.0


class FakeRanker:
    """Records which slate's state each member context was built from."""

    def __init__(self):
        self.built = []

    def member_context(self, prof, history, now, query=None):
        self.built.append(now)
        return f"context of {prof.member_id} at {now:.0f}"


def example(task, label, member="m1", job_id="j1", t=0.0, surface="feed"):
    return Example(task=task, label=label, member_id=member, job=job(job_id),
                   slate_id=f"{member}/{surface}/{t:.0f}", request_time=t, profile=profile(member), history=())


def day_of(member, day, jobs=("j1", "j2"), tasks=("click", "apply")):
    """Two slates on one day: the second an hour after the first."""
    out = []
    for k, t in enumerate((day * DAY + 3600, day * DAY + 7200)):
        for j in jobs:
            for task in tasks:
                out.append(example(task, int(j == "j1" and task == "click" and k == 1), member, f"{j}{k}", t))
    return out


def test_one_row_per_member_day_with_every_task_of_every_job():
    ranker = FakeRanker()
    rows = training_rows(day_of("m1", 1) + day_of("m1", 2) + day_of("m2", 1), PromptCache(ranker))
    assert len(rows) == 3
    for row in rows:
        assert row.tasks == ["click", "apply"] and len(row.segments) == 4
        assert all(len(y) == 2 for y in row.labels)
        assert row.phrasing in TRAIN_PHRASINGS
    # one positive per day: j1 of the second slate, on click only
    assert sorted(sum(map(sum, r.labels)) for r in rows) == [1, 1, 1]
    # each prefix is the state at the day's first slate, never a later one's
    assert sorted(ranker.built) == sorted([1 * DAY + 3600, 2 * DAY + 3600, 1 * DAY + 3600])


def test_a_job_asked_fewer_tasks_than_its_row_is_left_out():
    exs = day_of("m1", 1, jobs=("j1",)) + [example("click", 0, "m1", "j9", 1 * DAY + 3600)]
    rows = training_rows(exs, PromptCache(FakeRanker()))
    assert len(rows) == 1 and len(rows[0].segments) == 2  # j9 has no apply label


def test_max_groups_builds_only_that_many_prompts():
    ranker = FakeRanker()
    exs = [ex for d in range(1, 11) for ex in day_of("m1", d)]
    rows = training_rows(exs, PromptCache(ranker), max_groups=3)
    assert len(rows) == 3 and len(ranker.built) == 3
    assert len(training_rows(exs, PromptCache(FakeRanker()))) == 10


def test_a_cpu_budget_reads_the_recipes_rows_a_minute_unless_told_another_rate():
    assert rows_readable_in(20) == 20 * ROWS_PER_CPU_MINUTE
    assert rows_readable_in(20, per_minute=300) == 6000  # `train ranker --rows-per-minute 300`
    assert rows_readable_in(0.5, per_minute=300) == 200  # a floor: a short budget still reads a sample


def thinnable_days(n_members=40, n_days=10, seed=0):
    """Member-days of 4 jobs x (click, apply), with positives on about a third of the days."""
    rng = random.Random(seed)
    out = []
    for m in range(n_members):
        for d in range(1, n_days + 1):
            hit = rng.random() < 0.35
            for k, j in enumerate(("a", "b", "c", "d")):
                for task in ("click", "apply"):
                    t = d * DAY + 3600
                    out.append(Example(task=task, label=int(hit and k == 0 and (task == "click" or d % 2 == 0)),
                                       member_id=f"m{m}", job=job(f"{j}{d}", title=f"Job {j}{d}"),
                                       slate_id=f"m{m}/feed/{t:.0f}", request_time=t, profile=profile(f"m{m}"),
                                       history=()))
    return out


def test_thinning_keeps_every_positive_job_and_a_share_of_the_negative_ones():
    exs = thinnable_days()
    full = training_rows(exs, PromptCache(FakeRanker()))
    built = FakeRanker()
    thin = training_rows(exs, PromptCache(built), keep_negatives=0.3)
    # a job: its member-day's context (the instruction's phrasing is drawn per row) and its body
    jobs = lambda rows: {(r.prefix.rsplit("context of", 1)[1], s): ys  # noqa: E731
                         for r in rows for s, ys in zip(r.segments, r.labels)}
    all_jobs, kept = jobs(full), jobs(thin)
    positive = {k for k, ys in all_jobs.items() if any(ys)}
    assert positive and positive <= set(kept)  # no positive is ever dropped
    assert set(kept) <= set(all_jobs) and all(kept[k] == all_jobs[k] for k in kept)
    negative = [k for k in all_jobs if k not in positive]
    share = sum(k in kept for k in negative) / len(negative)
    assert 0.2 < share < 0.4, share  # 0.3 of ~1,000 negative jobs
    # a day without any positive is dropped whole, so its prompt is never built
    assert len(built.built) == len(thin) < len(full)
    assert training_rows(exs, PromptCache(FakeRanker()), keep_negatives=0.3) == thin  # by seed
    assert training_rows(exs, PromptCache(FakeRanker()), keep_negatives=1.0) == full


def test_the_offset_shift_is_the_log_share_of_negative_labels_kept():
    exs = thinnable_days(n_members=200)
    full = training_rows(exs, PromptCache(FakeRanker()))
    thin = training_rows(exs, PromptCache(FakeRanker()), keep_negatives=0.3)
    negatives = lambda rows: sum(len(ys) - sum(ys) for r in rows for ys in r.labels)  # noqa: E731
    truth = math.log(negatives(thin) / negatives(full))
    assert negative_log_keep(thin, 0.3) == pytest.approx(truth, abs=0.05)
    assert negative_log_keep(full, 1.0) == 0.0
    with pytest.raises(ValueError, match="keep_negatives"):
        training_rows(exs, PromptCache(FakeRanker()), keep_negatives=0)


def test_a_row_asks_its_questions_in_the_phrasing_of_its_instruction():
    """Serving asks phrasing p's questions after phrasing p's instruction; a row that
    mixed them would train on prompts no request ever sends."""
    from models.prompting import with_instruction

    exs = [ex for m in ("m1", "m2", "m3") for d in range(1, 9) for ex in day_of(m, d)]
    rows = training_rows(exs, PromptCache(FakeRanker()))
    assert {r.phrasing for r in rows} == set(TRAIN_PHRASINGS)  # enough rows to draw every phrasing
    for row in rows:
        assert row.prefix.startswith(with_instruction("", row.phrasing))


def tiny_ranker_and_slates():
    """A small random ranker (scores spread, so a mix-up shows) and 8 slates of 4 members
    that differ in their tasks."""
    import torch

    from models.ranker import Ranker, StudentConfig, load_tokenizer, student_model

    tok = load_tokenizer()
    model = student_model(tok, StudentConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=1), seed=0)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20)
    titles = ["Data Engineer", "Nurse", "Store Manager", "Welder", "Teacher", "Accountant", "Chef"]
    exs = []
    for m, (member, tasks) in enumerate([("m1", ("click", "apply")), ("m2", ("click", "apply")),
                                         ("m3", ("save",)), ("m4", ("click", "apply"))]):
        for d in (1, 2):
            for k in range(3 + m):
                title = titles[(m + d + k) % len(titles)]
                exs += [Example(task=t, label=0, member_id=member,
                                job=job(f"{member}-{d}-{k}", title=title, location=["Berlin", "Lima"][k % 2]),
                                slate_id=f"{member}/feed/{d}", request_time=d * DAY, profile=profile(member),
                                history=()) for t in tasks]
    return Ranker(model, tok), exs


def test_slates_scored_together_score_what_each_scores_alone():
    """The GPU's evaluation path (`slates_per_pass` > 1, through `Ranker.score_many`)
    gives every example the score of its slate's own pass, for each task and for a
    held-out `ask`; the slates differ in their tasks and in their members."""
    import numpy as np

    from serving.training.ranker_pipeline import score_examples

    ranker, exs = tiny_ranker_and_slates()
    for ask in (None, "interest"):
        alone = score_examples(ranker, exs, PromptCache(ranker), progress=False, ask=ask, slates_per_pass=1)
        together = score_examples(ranker, exs, PromptCache(ranker), progress=False, ask=ask, slates_per_pass=4)
        np.testing.assert_allclose(together, alone, atol=1e-5)
        assert np.ptp(alone) > 1e-3  # well above the tolerance


def test_piped_scoring_prints_plain_progress_lines(capsys, monkeypatch):
    """With output piped the bar is off (TQDM_DISABLE): a long evaluation still says how
    far it is, one plain line at a time; without progress, none."""
    from serving.training import ranker_pipeline
    from serving.training.ranker_pipeline import score_examples

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(ranker_pipeline, "PLAIN_PROGRESS_S", 0.0)
    ranker, exs = tiny_ranker_and_slates()
    score_examples(ranker, exs, PromptCache(ranker))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("score (phrasing 0)")]
    assert [ln.split(",")[0] for ln in lines] == [f"score (phrasing 0): {n}/8 slates" for n in range(1, 9)]
    assert all(0 <= float(ln.split(", ")[1].removesuffix(" min")) < 5 for ln in lines)  # minutes since it began
    score_examples(ranker, exs, PromptCache(ranker), progress=False)
    assert "slates" not in capsys.readouterr().out
