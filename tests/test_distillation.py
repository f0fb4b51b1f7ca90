"""Distillation (issue 16): the teacher's answers, cached, and a student that learns them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.distillation import cached_teacher_logits, teacher_logits
from models.ranker import Ranker
from models.ranker_training import TrainRow, distillation_loss

SIM = {"sim_members": 24, "sim_days": 6, "sim_seeds": [3], "sim_text_share": 0.35,
       "sim_career_move_share": 0.25, "sim_community_strength": 1.0}


def test_the_distillation_loss_is_zero_at_the_teacher_and_pulls_toward_it():
    teacher = torch.tensor([2.0, -1.0, 0.0, -4.0])
    assert torch.allclose(distillation_loss(teacher.clone(), teacher, 2.0), torch.zeros(4), atol=1e-6)
    student = torch.zeros(4, requires_grad=True)
    loss = distillation_loss(student, teacher, 2.0)
    assert (loss[[0, 1, 3]] > 0).all()
    loss.sum().backward()
    # a step against the gradient moves every answer toward the teacher's log-odds
    assert torch.equal(torch.sign(-student.grad[[0, 1, 3]]), torch.sign(teacher[[0, 1, 3]]))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """SmolLM2's first 4 blocks as an untrained 'teacher' with its own Yes/No leaning,
    saved as `train ranker` saves a checkpoint (the marketplace it names included)."""
    ranker = Ranker.teacher(layers=4)
    ranker.meta.update(SIM)
    return ranker.save(tmp_path_factory.mktemp("teacher") / "teacher")


@pytest.mark.slow
def test_teacher_logits_are_the_log_odds_its_scores_are_made_of(teacher_dir):
    teacher = Ranker.load(teacher_dir, device="cpu")
    rows = [TrainRow(PREFIX, JOBS, ["click", "apply"], [[0, 0]] * len(JOBS))]
    [logits] = teacher_logits(teacher, rows, progress=False)
    p = teacher.score_tasks(PREFIX, JOBS, ["click", "apply"])
    np.testing.assert_allclose(np.array(logits), np.log(p) - np.log1p(-p), atol=1e-3)


@pytest.mark.slow
def test_teacher_answers_are_cached_by_teacher_and_rows(teacher_dir, tmp_path):
    rows = [TrainRow(PREFIX, JOBS[:2], ["click"], [[0], [1]])]
    first, cache, read = cached_teacher_logits(teacher_dir, rows, tmp_path, progress=False)
    assert not read and cache.exists()
    again, cache2, read2 = cached_teacher_logits(teacher_dir, rows, tmp_path, progress=False)
    assert read2 and cache2 == cache and again == first
    other = [TrainRow(PREFIX, JOBS[1:3], ["click"], [[0], [1]])]
    _, cache3, read3 = cached_teacher_logits(teacher_dir, other, tmp_path, progress=False)
    assert not read3 and cache3 != cache
    meta = json.loads((teacher_dir / "ranker.json").read_text())
    (teacher_dir / "ranker.json").write_text(json.dumps({**meta, "answer_offset": 1.0}))
    try:  # a changed teacher answers afresh
        _, cache4, read4 = cached_teacher_logits(teacher_dir, rows, tmp_path, progress=False)
        assert not read4 and cache4 != cache
    finally:
        (teacher_dir / "ranker.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_a_distilled_student_is_nearer_its_teacher_than_the_hard_label_student(teacher_dir, tmp_path, both_cores):
    """Same shape (the teacher's first 2 blocks), same rows, same steps: on held-out
    members' prompts, KL(teacher || student) of the Yes/No answers is lower when the
    student learned from the teacher's answers than from the labels alone."""
    from serving.training.compression import CompressRecipe, compress, teacher_split
    from serving.training.ranker_pipeline import PromptCache, training_rows

    students = {}
    for recipe, weight in (("sft", 0.0), ("distil", 1.0)):
        # `train` sets torch's process-wide thread count: `both_cores` puts it back after
        # this module, as later modules' determinism tests (tests/test_encoder.py) need.
        plan = CompressRecipe(recipe, steps=40, layers=2, distil_weight=weight, frozen_blocks=0, threads=both_cores)
        students[recipe], out = compress(teacher_dir, plan, tmp_path / recipe, tmp_path / "cache", progress=False)
        assert Ranker.load(out, device="cpu").meta["compression"]["recipe"] == recipe

    teacher = Ranker.load(teacher_dir, device="cpu")
    held = teacher_split(teacher.meta, progress=False).held_out
    rows = training_rows(held, PromptCache(teacher), seed=1)[:12]
    t = torch.tensor([x for r in teacher_logits(teacher, rows, progress=False) for job in r for x in job])
    kl = {}
    for name, student in students.items():
        s = torch.tensor([x for r in teacher_logits(student, rows, progress=False) for job in r for x in job])
        kl[name] = float(distillation_loss(s, t, 1.0).mean())
    assert kl["distil"] < 0.7 * kl["sft"], kl


PREFIX = ("## Instruction\nDecide whether the member will act on each job.\n\n## Member Profile\n"
          "Current title: Line Cook\nSkills: grilling, food safety\n\n")
JOBS = ["## Question\nTitle: Chef\nCompany: Bistro\n## Answers", "## Question\nTitle: Nurse\nCompany: Clinic\n## Answers",
        "## Question\nTitle: Welder\nCompany: Yard\n## Answers"]
