"""Multi-item scoring must give each candidate the score it gets alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import multi_item
from models.ranker import Ranker, StudentConfig, load_tokenizer, student_model

torch.set_num_threads(1)

TINY = StudentConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


@pytest.fixture(scope="module")
def tiny_ranker() -> Ranker:
    tok = load_tokenizer()
    model = student_model(tok, TINY, seed=0)
    # A random init barely separates Yes from No; scale the embeddings up so the
    # scores spread out and a wrong mask would visibly move them.
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20)
    return Ranker(model, tok)


PREFIX = (
    "## Instruction\nPredict whether the member will apply to the question job.\n\n"
    "## Member Profile\nCurrent title: Data Engineer\nSkills: Python, SQL, Kafka\n\n"
    "## Past job interaction data\nMember has applied to the following jobs: [2 days ago, ETL Developer, Acme, Berlin]\n\n"
)
SEGMENTS = [
    "## Question\nTitle: Data Engineer\nCompany: Foo\nLocation: Berlin\nSeniority: mid\nSkills: Python\n## Answer:",
    "## Question\nTitle: Nurse\nCompany: Clinic\nLocation: Paris\nSeniority: senior\nSkills: patient care, triage, first aid\n## Answer:",
    "## Question\nTitle: Chef\nCompany: Bistro\nLocation: Rome\nSeniority: entry\nSkills: cooking\n## Answer:",
    "## Question\nTitle: ML Engineer\nCompany: Bar\nLocation: Remote\nSeniority: lead\nSkills: PyTorch, Python, CUDA, MLOps\n## Answer:",
]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("method", ["multi_item", "prefix_cache"])
def test_multi_item_scores_equal_single_prompt_scores(tiny_ranker, attn, method):
    tiny_ranker.model.config._attn_implementation = attn
    try:
        alone = tiny_ranker.score(PREFIX, SEGMENTS, method="single")
        together = tiny_ranker.score(PREFIX, SEGMENTS, method=method)
    finally:
        tiny_ranker.model.config._attn_implementation = "sdpa"
    assert alone.shape == (len(SEGMENTS),)
    assert np.ptp(alone) > 1e-3, "scores too flat for the comparison to mean anything"
    np.testing.assert_allclose(together, alone, atol=1e-3)


def test_candidate_order_does_not_change_scores(tiny_ranker):
    forward = tiny_ranker.score(PREFIX, SEGMENTS, method="multi_item")
    backward = tiny_ranker.score(PREFIX, SEGMENTS[::-1], method="multi_item")[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-4)


def test_segments_do_not_see_each_other_in_the_mask():
    packed = multi_item.pack_rows([([1, 2, 3], [[4, 5], [6, 7, 8]])])
    allowed = packed.allowed[0]
    # the second segment's tokens (positions 5..7) see the prefix and themselves only
    assert allowed[5:8, :3].all()
    assert not allowed[5:8, 3:5].any()
    assert packed.position_ids[0].tolist() == [0, 1, 2, 3, 4, 3, 4, 5]
    assert packed.answer_index == [(0, 4), (0, 7)]


def test_padded_batch_of_rows_matches_rows_alone(tiny_ranker):
    tok = tiny_ranker.tokenizer
    ids = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    row_a = (ids(PREFIX), [ids(s) for s in SEGMENTS[:3]])
    row_b = (ids(PREFIX[:60]), [ids(SEGMENTS[3])])
    m, y, n = tiny_ranker.model, tiny_ranker.yes_id, tiny_ranker.no_id
    with torch.no_grad():
        batched = multi_item.answer_logits(m, multi_item.pack_rows([row_a, row_b]), y, n)
        a = multi_item.answer_logits(m, multi_item.pack_rows([row_a]), y, n)
        b = multi_item.answer_logits(m, multi_item.pack_rows([row_b]), y, n)
    torch.testing.assert_close(batched, torch.cat([a, b]), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_teacher_multi_item_matches_single_prompts():
    ranker = Ranker.teacher()
    alone = ranker.score(PREFIX, SEGMENTS, method="single")
    for method in ("multi_item", "prefix_cache"):
        np.testing.assert_allclose(ranker.score(PREFIX, SEGMENTS, method=method), alone, atol=1e-3)
