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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from index.records import MemberRecord, as_member
from index.terms import (
    PROMOTED_TERM,
    location_term,
    member_attributes,
    occupation_term,
    seniority_term,
    skill_term,
    title_term,
    title_tokens,
)

if TYPE_CHECKING:
    from index.embedder import Embedder
    from index.feedback import MemberRules
    from index.links import LinkGraph


@dataclass(frozen=True)
class Query:
    terms: Mapping[str, float] = field(default_factory=dict)
    links: Mapping[str, float] = field(default_factory=dict)
    # job term -> ((member attribute, link weight), ...): why a link term is in `links`
    link_sources: Mapping[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    must: tuple[tuple[str, ...], ...] = ()  # each group: the job needs at least one of these
    forbid: frozenset[str] = frozenset()
    penalties: Mapping[str, float] = field(default_factory=dict)
    exclude_ids: frozenset[str] = frozenset()


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
    put(seniority_term(member.seniority), weights.get("sen", 0.0))
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
    if same_location:
        must.append((location_term(m.location),))
        terms.pop(location_term(m.location), None)
    if promoted_only:
        must.append((PROMOTED_TERM,))
    embedding = embedder.embed_members([m])[0] if embedder is not None else None
    q = Query(terms=terms, links=link_terms, link_sources=sources, embedding=embedding, must=tuple(must))
    return rules.apply(q) if rules is not None else q
