"""The ranker: Yes/No head, checkpoints, and a tiny training run that learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.ranker import Ranker, StudentConfig, answer_token_ids, keep_first_layers, load_tokenizer, student_model
from models.ranker_training import TrainConfig, TrainRow, encode_rows, model_card, row_loss, train

torch.set_num_threads(1)

TINY = StudentConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def tiny(tokenizer, seed=0) -> Ranker:
    return Ranker(student_model(tokenizer, TINY, seed=seed), tokenizer)


PREFIX = "## Instruction\nPredict whether the member will apply.\n\n## Member Profile\nCurrent title: Cook\n\n"


def seg(title: str) -> str:
    return f"## Question\nTitle: {title}\nCompany: X\nLocation: Rome\n## Answer:"


def test_answers_are_single_tokens(tokenizer):
    yes, no = answer_token_ids(tokenizer)
    assert tokenizer.decode([yes]) == " Yes" and tokenizer.decode([no]) == " No"


def test_yes_no_head_equals_full_lm_head_restricted_to_two_tokens(tokenizer):
    ranker = tiny(tokenizer)
    ids = tokenizer(PREFIX + seg("Chef"), add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        full = ranker.model(ids).logits[0, -1]
    expected = torch.softmax(full[[ranker.yes_id, ranker.no_id]], -1)[0].item()
    assert ranker.score(PREFIX, [seg("Chef")])[0] == pytest.approx(expected, abs=1e-5)


def test_checkpoint_saved_and_reloaded_scores_identically(tokenizer, tmp_path):
    ranker = tiny(tokenizer, seed=3)
    segments = [seg(t) for t in ("Chef", "Nurse", "Welder")]
    before = ranker.score(PREFIX, segments)
    ranker.save(tmp_path / "ckpt", card=model_card("t", "tiny", ["apply"], "none", train(
        ranker, [TrainRow(PREFIX, segments, [1, 0, 0])], TrainConfig(steps=1, progress=False))))
    trained = ranker.score(PREFIX, segments)
    assert not np.allclose(before, trained)  # the step changed the model, so the save is not vacuous
    loaded = Ranker.load(tmp_path / "ckpt", device="cpu")
    np.testing.assert_array_equal(loaded.score(PREFIX, segments), trained)
    assert loaded.budget == ranker.budget
    assert (tmp_path / "ckpt" / "README.md").read_text().startswith("# t")


def test_row_loss_is_the_yes_no_cross_entropy(tokenizer):
    ranker = tiny(tokenizer)
    rows = [TrainRow(PREFIX, [seg("Chef"), seg("Nurse")], [1, 0])]
    p = ranker.score(PREFIX, [seg("Chef"), seg("Nurse")])
    loss, n = row_loss(ranker, encode_rows(ranker, rows))
    expected = -(np.log(p[0]) + np.log(1 - p[1])) / 2
    assert n == 2 and loss.item() == pytest.approx(expected, rel=1e-4)


def test_tiny_training_learns_a_task_from_the_instruction(tokenizer):
    """Same jobs, opposite labels under two instructions: only the instruction tells them apart."""
    chef_jobs = [seg(t) for t in ("Chef", "Sous Chef", "Line Cook")]
    other_jobs = [seg(t) for t in ("Nurse", "Welder", "Pilot")]
    like = "## Instruction\nWill the member apply?\n\n"
    hate = "## Instruction\nWill the member dismiss it?\n\n"
    rows = [TrainRow(like, chef_jobs + other_jobs, [1, 1, 1, 0, 0, 0], "apply"),
            TrainRow(hate, chef_jobs + other_jobs, [0, 0, 0, 1, 1, 1], "dismiss")]
    ranker = tiny(tokenizer, seed=1)
    report = train(ranker, rows, TrainConfig(steps=120, rows_per_step=2, lr=5e-3, warmup_steps=5, progress=False))
    assert report.steps == 120 and report.candidates == 120 * 12 and report.stopped_by == "steps"
    apply_scores = ranker.score(like, chef_jobs + other_jobs)
    dismiss_scores = ranker.score(hate, chef_jobs + other_jobs)
    assert apply_scores[:3].min() > apply_scores[3:].max()
    assert dismiss_scores[3:].min() > dismiss_scores[:3].max()


def test_training_is_deterministic_for_a_seed(tokenizer):
    rows = [TrainRow(PREFIX, [seg("Chef"), seg("Nurse")], [1, 0])] * 3
    runs = []
    for _ in range(2):
        ranker = tiny(tokenizer, seed=5)
        train(ranker, rows, TrainConfig(steps=3, rows_per_step=2, seed=5, progress=False))
        runs.append(ranker.score(PREFIX, [seg("Chef"), seg("Nurse")]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_mismatched_labels_are_refused(tokenizer):
    with pytest.raises(ValueError, match="2 segments and 1 labels"):
        encode_rows(tiny(tokenizer), [TrainRow(PREFIX, [seg("a"), seg("b")], [1], "apply")])


def test_long_segments_keep_their_answer_tail(tokenizer):
    ranker = tiny(tokenizer)
    ids = ranker.encode_segment(seg("Chef " * 200))
    assert len(ids) == ranker.budget.max_segment_tokens
    assert tokenizer.decode(ids).endswith("## Answer:")


def test_depth_pruning_keeps_the_first_blocks_and_reloads(tokenizer, tmp_path):
    full = student_model(tokenizer, StudentConfig(**{**TINY.__dict__, "num_hidden_layers": 3}), seed=1)
    kept = [layer.mlp.up_proj.weight.clone() for layer in full.model.layers[:2]]
    ranker = Ranker(keep_first_layers(full, 2), tokenizer)
    assert len(ranker.model.model.layers) == ranker.model.config.num_hidden_layers == 2
    for layer, weight in zip(ranker.model.model.layers, kept):
        assert torch.equal(layer.mlp.up_proj.weight, weight)
    ranker.save(tmp_path / "pruned")
    loaded = Ranker.load(tmp_path / "pruned", device="cpu")
    segments = [seg("Chef"), seg("Nurse")]
    np.testing.assert_array_equal(loaded.score(PREFIX, segments), ranker.score(PREFIX, segments))
    with pytest.raises(ValueError, match="layers must be in 1..2"):
        keep_first_layers(loaded.model, 3)
