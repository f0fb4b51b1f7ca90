"""`bench/scoring.py`'s multiply-add ceiling: what sharing a member's prefix can save at
most, once attention and the per-request prefix are counted."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.scoring import mac_ceiling

SMOLLM2 = SimpleNamespace(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                          intermediate_size=1536)


def test_without_attention_cost_and_with_endless_candidates_it_is_the_token_bound():
    # an MLP so wide that attention is nothing beside it; the prefix spread over a million candidates
    wide = SimpleNamespace(**{**vars(SMOLLM2), "intermediate_size": 10 ** 9})
    assert mac_ceiling(wide, 1288, 67, k=10 ** 6) == pytest.approx((1288 + 67) / 67, rel=1e-3)


def test_attention_to_a_long_prefix_keeps_it_well_under_the_token_bound():
    ceiling = mac_ceiling(SMOLLM2, 1288, 67, k=100)
    assert 14.0 < ceiling < 15.5  # the token bound is 20.2x
    assert mac_ceiling(SMOLLM2, 1288, 67, k=1000) > ceiling  # the prefix spread over more candidates
    assert mac_ceiling(SMOLLM2, 374, 67, k=100) < ceiling  # a shorter prefix has less to share
