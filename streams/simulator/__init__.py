"""A deterministic job-marketplace simulator built on real ESCO and O*NET taxonomies.

    from streams.simulator import MarketplaceConfig, Marketplace, write_jsonl
    sim = Marketplace(MarketplaceConfig(seed=7, n_members=1000, n_companies=100, n_jobs=2000, days=14))
    write_jsonl(sim.events(), "events.jsonl")
    sim.truth.affinity("m0000001", "j0000042"); sim.truth.qualified(...)

A share of members (`text_preference_share`, 0 for none) hold a wish that only their
about text states, e.g. "only remote or hybrid" (wishes.py); the truth follows it.
Two signals only a graph reveals (`career_move_share`, `community_strength`; both 0
for the marketplace before them): career moves along paths between adjacent
occupations that hires recur on (careers.py), and latent communities whose tastes
shape engagement (communities.py). `sim.truth.career_moves` records each move.
"""
from streams.simulator import careers, communities
from streams.simulator.config import MarketplaceConfig, SIM_START
from streams.simulator.jsonl import read_jsonl, write_jsonl
from streams.simulator.marketplace import CITIES, SENIORITY_YEARS, Marketplace
from streams.simulator.truth import Truth

__all__ = [
    "CITIES", "Marketplace", "MarketplaceConfig", "SENIORITY_YEARS", "SIM_START", "Truth",
    "careers", "communities", "read_jsonl", "write_jsonl",
]
