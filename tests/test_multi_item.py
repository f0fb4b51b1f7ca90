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
    "## Instruction\nAnswer each question about the job.\n\n"
    "## Member Profile\nData Engineer; mid, 4 years; Berlin\nSkills: Python, SQL, Kafka\n\n"
    "## Past job interactions\nApplied: ETL Developer, Acme, Berlin (2d ago)\n\n"
)
SEGMENTS = [
    "## Question\nData Engineer | Foo | Berlin | mid | Python\n## Answers",
    "## Question\nNurse | Clinic | Paris | senior | patient care, triage, first aid\n## Answers",
    "## Question\nChef | Bistro | Rome | entry | cooking\n## Answers",
    "## Question\nML Engineer | Bar | Remote | lead | PyTorch, Python, CUDA, MLOps\n## Answers",
]
TASKS = ["click", "save", "apply", "dismiss"]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("method", ["multi_item", "prefix_cache", "padded"])
def test_multi_task_multi_item_scores_equal_one_task_prompts(tiny_ranker, attn, method):
    """Every task of every job in one pass scores what each one-task prompt
    `prefix + job + question` scores alone."""
    tiny_ranker.model.config._attn_implementation = attn
    try:
        alone = tiny_ranker.score_tasks(PREFIX, SEGMENTS, TASKS, method="single")
        together = tiny_ranker.score_tasks(PREFIX, SEGMENTS, TASKS, method=method)
    finally:
        tiny_ranker.model.config._attn_implementation = "sdpa"
    assert alone.shape == (len(SEGMENTS), len(TASKS))
    assert np.ptp(alone) > 1e-3, "scores too flat for the comparison to mean anything"
    assert np.ptp(alone, axis=1).max() > 1e-3, "tasks must score differently for the test to mean anything"
    np.testing.assert_allclose(together, alone, atol=1e-3)


def test_single_task_prompt_text_is_what_the_pass_scores(tiny_ranker):
    """The one-task reference itself is the plain text prompt, token for token."""
    from models.verbalizer import answer_marker

    tok = tiny_ranker.tokenizer
    text = PREFIX + SEGMENTS[1] + answer_marker("apply")
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = tiny_ranker.model(ids).logits[0, -1]
    expected = torch.softmax(logits[[tiny_ranker.yes_id, tiny_ranker.no_id]], -1)[0].item()
    assert tiny_ranker.score(PREFIX, SEGMENTS[1:2], "apply")[0] == pytest.approx(expected, abs=1e-5)


def test_candidate_order_does_not_change_scores(tiny_ranker):
    forward = tiny_ranker.score_tasks(PREFIX, SEGMENTS, TASKS, method="multi_item")
    backward = tiny_ranker.score_tasks(PREFIX, SEGMENTS[::-1], TASKS, method="multi_item")[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-4)


def test_jobs_and_task_markers_do_not_see_each_other_in_the_mask():
    # prefix [1 2 3]; job A body [4 5] markers [9] [8 8]; job B body [6] markers [9] [8 8]
    packed = multi_item.pack_rows([([1, 2, 3], [[4, 5], [6]], [[9], [8, 8]])])
    allowed = packed.allowed[0]
    assert packed.input_ids[0].tolist() == [1, 2, 3, 4, 5, 9, 8, 8, 6, 9, 8, 8]
    # job A's second marker (positions 6, 7) sees the prefix, A's body and itself only
    assert allowed[6:8, :5].all() and not allowed[6:8, 5].any() and allowed[7, 6]
    # job B (positions 8..11) sees nothing of job A
    assert allowed[8:12, :3].all() and not allowed[8:12, 3:8].any()
    # each marker starts where it would alone: right after its job's body
    assert packed.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5, 5, 6, 3, 4, 4, 5]
    assert packed.answer_index == [(0, 5), (0, 7), (0, 9), (0, 11)]


def test_padded_batch_of_rows_matches_rows_alone(tiny_ranker):
    tok = tiny_ranker.tokenizer
    ids = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    markers = [ids("\nWill apply?"), ids("\nWill click?")]
    row_a = (ids(PREFIX), [ids(s) for s in SEGMENTS[:3]], markers)
    row_b = (ids(PREFIX[:60]), [ids(SEGMENTS[3])], markers[:1])
    m, y, n = tiny_ranker.model, tiny_ranker.yes_id, tiny_ranker.no_id
    with torch.no_grad():
        batched = multi_item.answer_logits(m, multi_item.pack_rows([row_a, row_b]), y, n)
        a = multi_item.answer_logits(m, multi_item.pack_rows([row_a]), y, n)
        b = multi_item.answer_logits(m, multi_item.pack_rows([row_b]), y, n)
    torch.testing.assert_close(batched, torch.cat([a, b]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mix_prefixes", [False, True], ids=["batch-per-member", "members-mixed"])
def test_several_members_in_one_pass_score_what_each_scores_alone(tiny_ranker, mix_prefixes):
    """The serving batcher's call: members with prefixes of different lengths share one
    padded prefix pass and job batches (one member's each, or mixed: the GPU's), and
    each gets its own scores."""
    short = PREFIX.split("## Past job interactions")[0]
    longer = PREFIX + "Viewed: Data Analyst x3; Analytics Engineer\n\n"
    requests = [(PREFIX, SEGMENTS), (short, SEGMENTS[1:3]), (longer, SEGMENTS[::-1])]
    together = tiny_ranker.score_many(requests, TASKS, mix_prefixes=mix_prefixes)
    for (prefix, jobs), got in zip(requests, together):
        alone = tiny_ranker.score_tasks(prefix, jobs, TASKS, method="single")
        np.testing.assert_allclose(got, alone, atol=1e-4)
    # a short prefix must not see the padding after it: the same jobs after the two
    # prefixes score differently, so a leak would have to match by chance
    assert not np.allclose(together[0][1:3], together[1], atol=1e-3)
    empty = tiny_ranker.score_many([(PREFIX, [])], TASKS)
    assert empty[0].shape == (0, len(TASKS))


def test_candidates_spanning_several_length_sorted_batches_keep_their_own_scores(tiny_ranker):
    """More candidates than one batch holds, of mixed lengths: they run shortest first
    in near-equal batches (`_length_sorted_batches`), and each answer still comes back in
    the caller's order, equal to its one-task prompt."""
    jobs = [SEGMENTS[i % 4] + " extra" * (i % 3) for i in range(9)]
    prefix_ids = tiny_ranker.encode_prefix(PREFIX)
    bodies, markers = tiny_ranker.encode_jobs(jobs), tiny_ranker.encode_markers(TASKS)
    segments = multi_item.job_segments(0, bodies, markers)
    runs = list(multi_item._length_sorted_batches(segments, batch=4))
    assert [len(r) for r in runs] == [3, 3, 3]  # 9 in the fewest batches of <= 4, as even as can be
    lengths = [len(segments[i].ids) for r in runs for i in r]
    assert lengths == sorted(lengths) and len(set(lengths)) > 1
    with torch.inference_mode():
        logits = multi_item.score_with_prefix_cache(tiny_ranker.model, prefix_ids, bodies, markers,
                                                    tiny_ranker.yes_id, tiny_ranker.no_id, batch=4)
    got = torch.softmax(logits.float(), dim=-1)[..., 0].numpy()
    alone = tiny_ranker.score_tasks(PREFIX, jobs, TASKS, method="single")
    assert np.ptp(alone[:, 0]) > 1e-3, "scores too flat for the order to be checked"
    np.testing.assert_allclose(got, alone, atol=1e-4)


@pytest.mark.parametrize("apply_softmax", [False, True])
@pytest.mark.parametrize("item_first", [False, True])
def test_label_probabilities_are_the_next_token_distribution_of_query_plus_item(
        tiny_ranker, apply_softmax, item_first):
    """SGLang's scoring API: p(label | query + item) per item, read from the whole
    vocabulary (or, with apply_softmax, renormalized over the labels)."""
    tok = tiny_ranker.tokenizer
    ids = lambda s: tok(s, add_special_tokens=False, split_special_tokens=True).input_ids  # noqa: E731
    labels = [tiny_ranker.yes_id, tiny_ranker.no_id, ids(" Maybe")[0]]
    got = tiny_ranker.label_probabilities(PREFIX, SEGMENTS, labels, apply_softmax, item_first)
    for i, seg in enumerate(SEGMENTS):
        prompt = ids(seg) + ids(PREFIX) if item_first else ids(PREFIX) + ids(seg)
        with torch.no_grad():
            logits = tiny_ranker.model(torch.tensor([prompt])).logits[0, -1].float()
        want = logits[labels].softmax(-1) if apply_softmax else logits.softmax(-1)[labels]
        np.testing.assert_allclose(got[i], want.numpy(), atol=1e-5)
    assert np.ptp(got[:, 0]) > 0, "items must score differently for the test to mean anything"
    with pytest.raises(ValueError, match="label_token_ids"):
        tiny_ranker.label_probabilities(PREFIX, SEGMENTS, [10**9])


@pytest.mark.slow
def test_teacher_multi_item_matches_single_prompts():
    ranker = Ranker.teacher()
    alone = ranker.score_tasks(PREFIX, SEGMENTS, TASKS, method="single")
    for method in ("multi_item", "prefix_cache"):
        np.testing.assert_allclose(ranker.score_tasks(PREFIX, SEGMENTS, TASKS, method=method), alone, atol=1e-3)
