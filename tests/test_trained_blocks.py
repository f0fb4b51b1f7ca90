"""The trained blocks run by hand for training (`models.trained_blocks`): the gradient is the
plain forward's, exactly with the prefix differentiated, and exactly the prefix-detached
one without; and a ranker trained without backprop through the prefix still learns
what only the prefix says."""
from __future__ import annotations

import pytest
import torch

from models.multi_item import answer_hidden, pack_rows, run_blocks, yes_no_logits
from models.ranker import Ranker, load_tokenizer, student_model
from models.ranker_training import TrainConfig, TrainRow, encode_rows, prepare_trainable, train
from models.trained_blocks import split_prefix
from tests.test_ranker import FAST, TINY, seg, tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def _prefix(occupation: str, extra: str = "") -> str:
    return f"## Member Profile\n{occupation}; mid, 3 years; Rome{extra}\n\n"


ROWS = [  # prefixes of different lengths, so rows are cut at different places and padded
    TrainRow(_prefix("Cook"), [seg("Chef"), seg("Nurse")], ["apply", "click"], [[1, 0], [0, 1]]),
    TrainRow(_prefix("Nurse", ". Worked nights in a large hospital for years."), [seg("Nurse")], ["apply", "click"],
             [[1, 1]]),
    TrainRow(_prefix("Welder", "."), [seg("Welder"), seg("Chef"), seg("Pilot")], ["apply", "click"],
             [[1, 0], [0, 0], [0, 1]]),
]


def _reference_logits(trainable, hidden, packed, prefix_lengths, detach_prefix: bool) -> torch.Tensor:
    """The model's own blocks over the whole packed rows; with `detach_prefix`, every
    trained block's input is cut from the graph at the prefix positions."""
    owner = trainable.model
    L = packed.input_ids.shape[1]
    in_prefix = (torch.arange(L)[None] < torch.tensor(prefix_lengths)[:, None])[..., None]
    h = hidden
    for layer in trainable.layers()[trainable.frozen:]:
        if detach_prefix:
            h = torch.where(in_prefix, h.detach(), h)
        h = run_blocks(owner, h, packed, [layer])
    states = answer_hidden(owner, h, packed)
    return yes_no_logits(owner, states - trainable.mean, 0, 0, head=trainable.head_rows()) + trainable.bias


def _gradients(trainable, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    params = {n: p for n, p in trainable.model.named_parameters() if p.requires_grad}
    params.update(head=trainable.head, bias=trainable.bias)
    for p in params.values():
        p.grad = None
    (logits[:, 0] - logits[:, 1]).pow(2).sum().backward()  # any scalar that reads every answer
    return {n: p.grad.clone() for n, p in params.items()}


@pytest.mark.parametrize("prefix_backprop", [True, False], ids=["prefix-backprop", "prefix-constant"])
def test_the_hand_run_blocks_give_the_plain_forwards_loss_and_gradient(tokenizer, prefix_backprop):
    ranker = tiny(tokenizer, seed=5)
    encoded = encode_rows(ranker, ROWS, {})
    trainable = prepare_trainable(ranker, TrainConfig(frozen_blocks=1))
    with torch.no_grad():  # a head that reads something, so every weight's gradient is nonzero
        trainable.head.copy_(torch.randn(trainable.head.shape, generator=torch.Generator().manual_seed(1)))
    packed = pack_rows([(e.prefix, e.bodies, e.markers) for e in encoded])
    lengths = [len(e.prefix) for e in encoded]
    assert len(set(lengths)) == 3
    hidden = trainable.lower(packed).float()
    by_hand = trainable.upper_logits(hidden, packed, lengths, prefix_backprop)
    reference = _reference_logits(trainable, hidden, packed, lengths, detach_prefix=not prefix_backprop)
    torch.testing.assert_close(by_hand, reference, atol=1e-5, rtol=1e-4)
    got, want = _gradients(trainable, by_hand), _gradients(trainable, reference)
    assert got.keys() == want.keys()
    for name in want:
        assert want[name].abs().max() > 0, name
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-3, msg=name)


def test_a_constant_prefix_cuts_only_the_prefixs_own_path(tokenizer):
    """Same forward, same head gradient; the blocks' gradients differ (the prefix's
    mixing above the frozen blocks is untrained), but its keys still learn."""
    ranker = tiny(tokenizer, seed=6)
    encoded = encode_rows(ranker, ROWS, {})
    trainable = prepare_trainable(ranker, TrainConfig(frozen_blocks=1))
    with torch.no_grad():
        trainable.head.copy_(torch.randn(trainable.head.shape, generator=torch.Generator().manual_seed(2)))
    packed = pack_rows([(e.prefix, e.bodies, e.markers) for e in encoded])
    lengths = [len(e.prefix) for e in encoded]
    hidden = trainable.lower(packed).float()
    full = _gradients(trainable, trainable.upper_logits(hidden, packed, lengths, True))
    cut = _gradients(trainable, trainable.upper_logits(hidden, packed, lengths, False))
    torch.testing.assert_close(cut["head"], full["head"], atol=1e-5, rtol=1e-4)
    first_mlp = next(n for n in full if n.endswith("layers.1.mlp.down_proj.weight"))
    assert not torch.allclose(cut[first_mlp], full[first_mlp], atol=1e-6)
    keys = next(n for n in full if n.endswith("layers.1.self_attn.k_proj.weight"))
    assert cut[keys].abs().max() > 0


def test_training_without_prefix_backprop_still_learns_what_only_the_prefix_says(tokenizer):
    """The same three jobs for every member; Yes only for the job of the member's own
    occupation, which only the prefix states."""
    occupations = ["Chef", "Nurse", "Welder"]
    jobs = [seg(t) for t in occupations]
    rows = [TrainRow(_prefix(o), jobs, ["apply"], [[int(o == t)] for t in occupations]) for o in occupations]
    ranker = Ranker(student_model(tokenizer, TINY, seed=1), tokenizer)
    train(ranker, rows, TrainConfig(steps=150, epochs=150, lr=5e-3, head_lr=5e-3, frozen_blocks=1,
                                    prefix_backprop=False, task_weights={}, **FAST))
    for o in occupations:
        p = ranker.score_tasks(_prefix(o), jobs, ["apply"])[:, 0]
        own = occupations.index(o)
        assert p[own] > max(q for i, q in enumerate(p) if i != own), (o, p)


def test_a_prefix_that_is_not_plain_causal_text_is_refused(tokenizer):
    """The prefix pass runs unmasked causal attention: a prefix whose mask says otherwise
    would be computed as something it is not, so the cut refuses it."""
    ranker = tiny(tokenizer)
    encoded = encode_rows(ranker, ROWS, {})
    packed = pack_rows([(e.prefix, e.bodies, e.markers) for e in encoded])
    lengths = [len(e.prefix) for e in encoded]
    split_prefix(packed, lengths)  # as packed: accepted
    packed.allowed[1, 2, 5] = True  # a prefix id that sees one after it
    with pytest.raises(ValueError, match="row 1: its first .* ids are not plain causal text"):
        split_prefix(packed, lengths)
