"""What a retrieval asks for: a weighted term vector, a learned-link vector, an
embedding, and the masks/penalties that member rules and filters impose.

The fused score of job j for a query (weights w_* from the index config) is

    w_dense * <embedding, e_j>
  + w_term  * sum_{t in j} terms[t] / ||terms||
  + w_link  * sum_{t in j} links[t] / ||links||
  - sum_{t in j} penalties[t]

and j is dropped when it has a `forbid` term, lacks a term from any `must` group, is
in `exclude_ids`, or is closed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from itertools import chain
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

import numpy as np

from index.records import MemberRecord, as_member, seniority_rank
from index.terms import (
    PROMOTED_TERM,
    location_term,
    member_attributes,
    normalize_location,
    occupation_term,
    seniority_term,
    skill_term,
    term_keys,
    title_term,
    title_tokens,
)

if TYPE_CHECKING:
    from index.embedder import Embedder
    from index.feedback import MemberRules
    from index.links import LinkGraph


class PackedTerms(NamedTuple):
    """A query's weighted terms as arrays: its terms, then its links, then its penalties.
    Made once when the query is built, like its embedding, so that the index compiles a
    batch of queries with array concatenations and one vectorized column lookup instead
    of a dictionary lookup per term. 1,000 member queries of 41 terms, bench/retrieval.py's
    "compile" column: 16-20 ms before, 2.5-3 ms after on the GPU machine's host (5-9 ms
    on a 2-core VM); its "pack at build" column times the packing (11-28 ms, cold, over
    queries built long before). A term that is both a term and a link stays two
    entries: every scan sums a query's entries per job, so merging them here would be
    work for nothing."""
    keys: np.ndarray  # int64 (`terms.term_keys`)
    weights: np.ndarray  # float64, as given
    lengths: tuple[int, int, int]  # how many of them are terms, links, penalties
    norms: tuple[float, float]  # Euclidean length of the term weights and of the link weights

    @classmethod
    def of(cls, terms: Mapping[str, float], links: Mapping[str, float],
           penalties: Mapping[str, float]) -> "PackedTerms":
        n = len(terms) + len(links) + len(penalties)
        return cls(term_keys(chain(terms, links, penalties), n),
                   np.fromiter(chain(terms.values(), links.values(), penalties.values()), np.float64, n),
                   (len(terms), len(links), len(penalties)),
                   (math.hypot(*terms.values()), math.hypot(*links.values())))


@dataclass(frozen=True)
class Query:
    """Build one per retrieval; its mappings must not change afterwards (it packs them)."""
    terms: Mapping[str, float] = field(default_factory=dict)
    links: Mapping[str, float] = field(default_factory=dict)
    # job term -> ((member attribute, link weight), ...): why a link term is in `links`
    link_sources: Mapping[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    must: tuple[tuple[str, ...], ...] = ()  # each group: the job needs at least one of these
    forbid: frozenset[str] = frozenset()
    penalties: Mapping[str, float] = field(default_factory=dict)
    exclude_ids: frozenset[str] = frozenset()
    packed: PackedTerms = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packed", PackedTerms.of(self.terms, self.links, self.penalties))

    def __reduce__(self) -> tuple:
        # rebuilt from its fields, so the term keys are those of the loading process
        return _rebuild_query, ({f.name: getattr(self, f.name) for f in fields(self) if f.init},)


def _rebuild_query(kwargs: dict[str, Any]) -> Query:
    return Query(**kwargs)


# How much each member field asks for in a term query. Occupation is the strongest
# single signal; the title words, skills and seniority refine it.
MEMBER_FIELD_WEIGHTS = {"title": 1.0, "occ": 2.0, "skill": 1.0, "sen": 0.5, "loc": 1.0}


def member_terms(member: MemberRecord, weights: Mapping[str, float] = MEMBER_FIELD_WEIGHTS) -> dict[str, float]:
    out: dict[str, float] = {}

    def put(term: str, w: float) -> None:
        if w:
            out[term] = out.get(term, 0.0) + w

    for tok in title_tokens(member.title):
        put(title_term(tok), weights.get("title", 0.0))
    if member.occupation:
        put(occupation_term(member.occupation), weights.get("occ", 0.0))
    for s in member.skills:
        put(skill_term(s), weights.get("skill", 0.0))
    if seniority_rank(member.seniority) is not None:  # unknown: asks for no level
        put(seniority_term(member.seniority), weights.get("sen", 0.0))
    if normalize_location(member.location):
        put(location_term(member.location), weights.get("loc", 0.0))
    return out


def member_query(
    member: Any,
    embedder: "Embedder | None" = None,
    links: "LinkGraph | None" = None,
    rules: "MemberRules | None" = None,
    *,
    same_location: bool = False,
    promoted_only: bool = False,
    field_weights: Mapping[str, float] = MEMBER_FIELD_WEIGHTS,
    max_links: int = 64,
) -> Query:
    """The query that retrieves jobs for a member.

    links: expands the member's attributes into job terms learned from hires.
    rules: the member's feedback rules (masks, penalties, dismissed jobs).
    same_location: location becomes a must-match mask instead of a soft term.
    promoted_only: only promoted jobs (the promoted surface)."""
    m = as_member(member)
    terms = member_terms(m, field_weights)
    link_terms: dict[str, float] = {}
    sources: dict[str, tuple[tuple[str, float], ...]] = {}
    if links is not None:
        link_terms, sources = links.expand(member_attributes(m), top=max_links)
    must: list[tuple[str, ...]] = []
    if same_location and normalize_location(m.location):  # an unknown location restricts nothing
        must.append((location_term(m.location),))
        terms.pop(location_term(m.location), None)
    if promoted_only:
        must.append((PROMOTED_TERM,))
    embedding = embedder.embed_members([m])[0] if embedder is not None else None
    q = Query(terms=terms, links=link_terms, link_sources=sources, embedding=embedding, must=tuple(must))
    return rules.apply(q) if rules is not None else q
