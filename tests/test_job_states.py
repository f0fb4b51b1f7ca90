"""Jobs read alone (`models.job_states`): a body's states depend on the job only, are
computed once, and serving over them scores what the trained block mask scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import multi_item
from models.job_states import JobStates, body_states
from models.ranker import Ranker, StudentConfig, load_tokenizer, student_model
from models.ranker_training import TrainConfig, TrainRow, train

torch.set_num_threads(1)

TINY = StudentConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
PREFIX = ("## Instruction\nAnswer each question about the job.\n\n"
          "## Member Profile\nData Engineer; mid, 4 years; Berlin\nSkills: Python, SQL, Kafka\n\n")
OTHER_PREFIX = "## Instruction\nAnswer each question about the job.\n\n## Member Profile\nNurse; senior; Paris\n\n"
JOBS = [
    "## Question\nData Engineer | Foo | Berlin | mid | Python\n## Answers",
    "## Question\nNurse | Clinic | Paris | senior | patient care, triage, first aid\n## Answers",
    "## Question\nChef | Bistro | Rome | entry | cooking\n## Answers",
]
TASKS = ["click", "apply"]


@pytest.fixture()
def alone() -> Ranker:
    tok = load_tokenizer()
    model = student_model(tok, TINY, seed=0)
    with torch.no_grad():  # spread the random scores so that a wrong mask visibly moves them
        model.get_input_embeddings().weight.mul_(20)
    ranker = Ranker(model, tok)
    ranker.read_jobs_alone()
    return ranker


def test_a_body_reads_neither_the_member_nor_its_length(alone):
    """In the packed layout training reads, a body's hidden states are the same after
    any prefix (a mask letting it see the member would move them), and equal the states
    the cache computes for the body alone."""
    bodies = alone.encode_jobs(JOBS[:2])
    markers = alone.encode_markers(TASKS)

    def body_hidden(prefix: str) -> torch.Tensor:
        ids = alone.encode_prefix(prefix)
        packed = alone.pack([(ids, bodies, markers)])
        with torch.no_grad():
            hidden = multi_item.run_blocks(alone.model, multi_item.embed(alone.model, packed), packed,
                                           alone.model.model.layers)
        return hidden[0, len(ids):len(ids) + len(bodies[0])]

    first, second = body_hidden(PREFIX), body_hidden(OTHER_PREFIX)
    assert len(alone.encode_prefix(PREFIX)) != len(alone.encode_prefix(OTHER_PREFIX))
    torch.testing.assert_close(first, second, atol=1e-5, rtol=0)
    # The markers do read the member: otherwise the ranker could not personalize at all.
    assert not np.allclose(alone.score_tasks(PREFIX, JOBS, TASKS, method="multi_item"),
                           alone.score_tasks(OTHER_PREFIX, JOBS, TASKS, method="multi_item"), atol=1e-3)


def test_scores_over_cached_job_states_equal_the_trained_mask(alone):
    """Serving's path (prefix, then only the markers over the cached bodies) scores what
    the packed sequence under training's mask scores, for one member and for several at once."""
    packed = alone.score_tasks(PREFIX, JOBS, TASKS, method="multi_item")
    assert np.ptp(packed) > 1e-3, "scores too flat for the comparison to mean anything"
    np.testing.assert_allclose(alone.score_tasks(PREFIX, JOBS, TASKS), packed, atol=1e-5)
    many = alone.score_many([(PREFIX, JOBS), (OTHER_PREFIX, JOBS[::-1]), ("", JOBS[:1])], TASKS)
    np.testing.assert_allclose(many[0], packed, atol=1e-5)
    np.testing.assert_allclose(many[1], alone.score_tasks(OTHER_PREFIX, JOBS[::-1], TASKS, method="multi_item"),
                               atol=1e-5)
    np.testing.assert_allclose(many[2], alone.score_tasks("", JOBS[:1], TASKS, method="multi_item"), atol=1e-5)


def test_each_job_is_computed_once_whoever_asks(alone):
    alone.score_tasks(PREFIX, JOBS, TASKS)
    states = alone.job_states
    assert (states.misses, states.hits, len(states)) == (3, 0, 3)
    alone.score_tasks(OTHER_PREFIX, JOBS[::-1], TASKS)
    assert (states.misses, states.hits) == (3, 3)


def test_states_warmed_outside_a_scoring_call_hold_no_autograd_graph(alone):
    """The serving worker warms jobs outside `score_tasks`' inference mode. A state that
    kept its graph would keep every activation of its batch alive: 16 GB of RSS for
    605 jobs' 435 MiB of states in one e2e run."""
    assert torch.is_grad_enabled()
    alone.job_states.warm(alone.encode_jobs(JOBS))
    states = alone.job_states.get(alone.encode_jobs(JOBS))
    assert all(s.grad_fn is None and not s.requires_grad for s in states)


def test_the_cache_keeps_within_its_bytes(alone):
    bodies = alone.encode_jobs(JOBS)
    sizes = [s.numel() * s.element_size() for s in body_states(alone.model, bodies, alone.body_position)]
    states = JobStates(alone.model, alone.body_position, max_bytes=sizes[1] + sizes[2])
    states.get(bodies)
    assert len(states) == 2 and states.bytes == sizes[1] + sizes[2]  # the least recently used went
    states.get(bodies[:1])
    assert states.misses == 4 and states.bytes <= states.max_bytes


def test_plain_prompt_methods_are_refused(alone):
    """One-prompt reading would let the body see the member, which training never did."""
    with pytest.raises(ValueError, match="reads jobs alone"):
        alone.score_tasks(PREFIX, JOBS, TASKS, method="single")


def test_a_trained_jobs_alone_checkpoint_reloads_and_serves_what_it_trained(alone, tmp_path):
    before = alone.score_tasks(PREFIX, JOBS, TASKS)
    row = TrainRow(PREFIX, JOBS, TASKS, [[1, 1], [0, 0], [0, 1]])
    train(alone, [row] * 3, TrainConfig(steps=3, lr=1e-2, head_lr=1e-2, frozen_blocks=1, progress=False,
                                        warmup_steps=1, threads=1, precision="fp32"))
    trained = alone.score_tasks(PREFIX, JOBS, TASKS, method="multi_item")
    assert not np.allclose(before, trained)
    # The cache was filled by the untrained model; the trained one is another model object.
    np.testing.assert_allclose(alone.score_tasks(PREFIX, JOBS, TASKS), trained, atol=1e-5)
    alone.save(tmp_path / "ckpt")
    loaded = Ranker.load(tmp_path / "ckpt", device="cpu")
    assert loaded.body_position == alone.budget.max_prefix_tokens
    np.testing.assert_allclose(loaded.score_tasks(PREFIX, JOBS, TASKS), trained, atol=1e-5)


def test_jobs_computed_ahead_are_neither_hits_nor_misses(alone):
    alone.job_states.warm(alone.encode_jobs(JOBS))
    alone.score_tasks(PREFIX, JOBS, TASKS)
    states = alone.job_states
    assert (states.warmed, states.misses, states.hits) == (3, 0, 3)
