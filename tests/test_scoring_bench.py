"""`bench/scoring.py`'s multiply-add ceiling (what sharing a member's prefix can save at
most, once attention and the per-request prefix are counted) and how its figures carry
their errors (per-request rates, pooled rounds, targets met only 2 SE clear)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
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


def test_a_rate_measured_once_has_no_standard_error_and_steady_calls_have_none_to_speak_of():
    from bench.scoring import relative_se

    assert np.isnan(relative_se([(100, 4.0)]))
    assert relative_se([(100, 4.0), (50, 2.0), (100, 4.0)]) == 0.0  # the same 25 candidates/s each time
    # rates 20 and 30: mean 25, SD 7.07, SE 5 over two calls
    assert relative_se([(100, 5.0), (90, 3.0)]) == pytest.approx(5 / 25)


def test_rounds_pool_each_methods_requests_and_keep_the_first_rounds_scores():
    from bench.scoring import pooled_runs

    first = {"latencies_s": [4.0], "candidates": 100, "wall_s": 4.0, "cpu_s": 8.0, "units": [(100, 8.0)],
             "first_scores": np.array([0.1]), "sampled": None}
    second = {**first, "latencies_s": [5.0], "wall_s": 5.0, "cpu_s": 9.0, "units": [(100, 9.0)],
              "first_scores": np.array([0.9])}
    pooled = pooled_runs(pooled_runs(None, first), second)
    assert pooled["latencies_s"] == [4.0, 5.0] and pooled["units"] == [(100, 8.0), (100, 9.0)]
    assert (pooled["candidates"], pooled["wall_s"], pooled["cpu_s"]) == (200, 9.0, 17.0)
    assert pooled["first_scores"][0] == 0.1


def test_a_target_is_met_only_two_standard_errors_clear_of_it():
    from bench.scoring import target_verdict

    assert target_verdict(0.98, 0.02, 0.8) == "met"
    assert target_verdict(0.85, 0.05, 0.8).startswith("within 2 SE")  # 0.8 is one SE below
    assert target_verdict(0.78, 0.0, 0.8) == "NOT met"
