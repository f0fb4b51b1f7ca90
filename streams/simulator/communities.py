"""Latent communities: tastes no profile field or text states, shared with neighbours.

People who engaged with the same jobs share tastes their profiles do not state (the
premise of collaborative filtering). Here every member belongs to one of
`MarketplaceConfig.n_communities` latent communities, drawn from the member's own
stream (`"{seed}/community/{idx}"`), independent of occupation, level, city and text.
A community has tastes over

- employers: a handful of favourite companies,
- industries: two SOC major groups of companies,
- a work style: one work arrangement (on-site, hybrid, remote; the job's hidden
  arrangement, which its description states only when text wishes are on).

They act in two places. Affinity (truth.py: `taste_factor`) is multiplied by
`2 ** (strength * SCALE * (match - BASE_MATCH))`, `match` in [0, 1] weighing a
favourite employer 0.5, a liked industry 0.3 and the work style 0.2: at strength 1 a
job with none of them is worth 0.73 of itself, one in a liked industry 1.4 times, one
at a favourite employer in a liked industry 4.3 times (affinity capped at 1), so
clicks, applies and (through applies) hires follow tastes. And sessions
(marketplace.py) sometimes look up a favourite employer's open jobs, as people do: a
search by the company's name, so views follow tastes too.

A member's own profile and text never change with their community; their engagement
history and their neighbours' (members of the same community engage with the same
jobs: `tests/test_simulator_graph_signals.py` measures by how much) reveal it. With
`community_strength` at 0 nothing here runs and no random stream moves.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

FAVOURITE_COMPANIES = 4
LIKED_INDUSTRIES = 2
WEIGHTS = (0.5, 0.3, 0.2)  # favourite employer, liked industry, work style
BASE_MATCH = 0.15  # a match at this level (about the average job's) leaves affinity as it was
SCALE = 3.0  # doublings of affinity per unit of match, at strength 1
BROWSE_RATE = 0.5  # chance (x strength, at most 1) a session looks up a favourite employer


@dataclass(frozen=True, slots=True)
class Tastes:
    community: int
    companies: frozenset[int]  # favourite employers (company indices)
    majors: frozenset[str]  # liked industries (SOC major groups of companies)
    arrangement: int  # wishes.ON_SITE / HYBRID / REMOTE
    strength: float
    favourites: tuple[int, ...] = ()  # `companies` in a fixed order, for draws

    def match(self, company: int, company_major: str, arrangement: int) -> float:
        w_company, w_major, w_style = WEIGHTS
        return (w_company * (company in self.companies) + w_major * (company_major in self.majors)
                + w_style * (arrangement == self.arrangement))

    def factor(self, company: int, company_major: str, arrangement: int) -> float:
        return 2.0 ** (self.strength * SCALE * (self.match(company, company_major, arrangement) - BASE_MATCH))


def make_communities(seed: int, n: int, company_majors: list[str], strength: float) -> list[Tastes]:
    """`n` communities' tastes, from the stream `"{seed}/communities"` only."""
    rng = random.Random(f"{seed}/communities")
    majors = sorted(set(company_majors))
    out = []
    for c in range(n):
        favourites = tuple(sorted(rng.sample(range(len(company_majors)), min(FAVOURITE_COMPANIES, len(company_majors)))))
        out.append(Tastes(community=c, companies=frozenset(favourites),
                          majors=frozenset(rng.sample(majors, min(LIKED_INDUSTRIES, len(majors)))),
                          arrangement=rng.randrange(3), strength=strength, favourites=favourites))
    return out


def community_of(seed: int, member_idx: int, n: int) -> int:
    return random.Random(f"{seed}/community/{member_idx}").randrange(n)
