"""Career moves: recurring paths between adjacent occupations, the signal a hire graph learns.

People change occupations along recurring paths (O*NET's career-changer data, the
transition matrices of labour economics): a pet sitter becomes an animal-assisted
therapist, a groom an equine yard manager. Here a path joins two occupations in play
that share essential skills (their linked ESCO skills, taxonomy.py) but sit in
different SOC minor groups, so the move is not simply "more of the same family".
Each occupation keeps its `PATHS_PER_OCCUPATION` strongest paths, weighted by the
number of shared skills and the seniority direction (a step into a managerial
occupation is common, a step out of one rare). The paths are a property of the
occupation, the same for every member in it, so hires along them recur and a hire
graph can learn "occupation A leads to occupation B"; the skill terms of the member's
profile (a handful of A's top skills) and the job's (a handful of B's) often share
little or nothing.

What the paths do (marketplace.py, truth.py): a mover (a share of members, drawn from
their own stream `"{seed}/moves/{idx}"`) wants the target occupation first and their
own second; employers of the target occupation count the path as qualification
(transferable skills), so movers get hired there. No profile field or text says who
is a mover; their searches and applications show it. The hidden truth records each
apply and hire along a path (`Truth.career_moves`).

With `MarketplaceConfig.career_move_share` at 0 nothing here runs and no random
stream moves: the simulator's bytes are those before career moves existed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

MIN_SHARED_SKILLS = 6  # of the 40 linked skills: below this, two occupations are not adjacent
PATHS_PER_OCCUPATION = 2
# Seniority direction of a path, from the managerial flag of each end.
STEP_UP, LATERAL, STEP_DOWN = 1.5, 1.0, 0.3
# A member's chance of being a mover is the configured share over MOVE_YIELD: movers
# still apply in their own field too, some occupations have no path, and the path
# counts as qualification, so hires follow it more often than applies. Measured at the
# default 0.25 (seed 21, 2,500 members, 10 days): 0.18 of applies and 0.33 of hires go
# along a path (tests/test_simulator_graph_signals.py keeps them in [0.12, 0.35] and
# [0.15, 0.5]).
MOVE_YIELD = 0.7
SEARCH_RATE = 0.9  # chance a mover's session includes a search for the path's target


@dataclass(frozen=True, slots=True)
class CareerPath:
    source: int  # occupation index (in the marketplace's occupations in play)
    target: int
    shared_skills: int
    weight: float  # shared skills x seniority direction


def direction(source_managerial: bool, target_managerial: bool) -> float:
    if target_managerial and not source_managerial:
        return STEP_UP
    if source_managerial and not target_managerial:
        return STEP_DOWN
    return LATERAL


def career_paths(occ_skills: list[tuple[int, ...]], families: list[str],
                 managerial: list[bool]) -> dict[int, tuple[CareerPath, ...]]:
    """Each occupation's strongest paths to adjacent occupations of other families,
    best first (ties by index, so the result is the same in any process)."""
    n = len(occ_skills)
    if n == 0:
        return {}
    n_skills = 1 + max((s for ids in occ_skills for s in ids), default=0)
    has = np.zeros((n, n_skills), np.float32)
    for i, ids in enumerate(occ_skills):
        has[i, list(ids)] = 1.0
    shared = (has @ has.T).astype(np.int64)
    family = np.array(families)
    out: dict[int, tuple[CareerPath, ...]] = {}
    for i in range(n):
        ok = (shared[i] >= MIN_SHARED_SKILLS) & (family != family[i])
        cands = [CareerPath(i, int(j), int(shared[i, j]), float(shared[i, j]) * direction(managerial[i], managerial[j]))
                 for j in np.flatnonzero(ok)]
        cands.sort(key=lambda p: (-p.weight, p.target))
        if cands:
            out[i] = tuple(cands[:PATHS_PER_OCCUPATION])
    return out


def move_rng(seed: int, member_idx: int) -> random.Random:
    return random.Random(f"{seed}/moves/{member_idx}")


def mover_chance(share: float) -> float:
    return min(1.0, share / MOVE_YIELD)


def choose_path(rng: random.Random, paths: tuple[CareerPath, ...]) -> CareerPath:
    total = sum(p.weight for p in paths)
    u = rng.random() * total
    for p in paths:
        u -= p.weight
        if u < 0:
            return p
    return paths[-1]
