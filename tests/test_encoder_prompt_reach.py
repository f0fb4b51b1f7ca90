"""How much of an ego graph a PLM4Job prompt holds (bench/encoder_ablation.py's
prompt_reach): neighbours come nearest first, so a short prompt loses the far hops whole."""
from __future__ import annotations

from bench.encoder_ablation import prompt_reach
from models.encoder_training import PromptSpec
from serving.graph_data import marketplace_split
from serving.training.encoder_run import ModelShape, build_tokenizer_and_builder
from streams.simulator import MarketplaceConfig


def test_64_tokens_hold_no_hop2_neighbour_and_128_hold_them_all():
    split = marketplace_split(config=MarketplaceConfig(seed=5, n_members=400, n_companies=20, n_jobs=250, days=7),
                              train_days=5)
    reach = {}
    for max_len in (64, 128):
        _, builder = build_tokenizer_and_builder(split, ModelShape(vocab_size=2000), PromptSpec(max_len=max_len))
        reach[max_len] = prompt_reach(builder, split)
    short, long = reach[64], reach[128]
    assert short["members"] > 10 and short["hop2_in_graph"] > 1
    assert short["hop2_in_prompt"] == 0 and 0 < short["hop1_in_prompt"] < short["hop1_in_graph"]
    assert long["hop1_in_prompt"] == long["hop1_in_graph"] and long["hop2_in_prompt"] == long["hop2_in_graph"]
