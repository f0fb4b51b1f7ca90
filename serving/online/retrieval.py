"""Surface-aware retrieval queries, built from a member's state as of scoring time.

    recommendations  the member's profile (+ learned links, + feedback rules)
    search           the same, plus the query text as title/occupation/skill terms
    promoted         the same, restricted to promoted jobs

Feedback rules are folded from the dismisses in the member's history (oldest first)
with `index.feedback.MemberRules.update`. Deriving them from the history rather than
keeping them in a table of their own means the online worker (which has the member's
state in its `member-state` table) and replay (which folds the same events with the
same `streams.state` function) cannot disagree about them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

from index import Embedder, LinkGraph, MemberRules, Query, member_query
from index.query import MEMBER_FIELD_WEIGHTS
from index.terms import normalize, occupation_term, skill_term, title_term, title_tokens
from streams.schemas import Job, Surface
from streams.state import MemberState

JobLookup = Callable[[str], Optional[Job]]

# The query text counts as much as the profile's strongest field: a search is what
# the member asks for right now.
SEARCH_TERM_WEIGHTS = {"title": 1.5, "occ": 3.0, "skill": 2.0}


def member_rules(state: MemberState, job_lookup: JobLookup) -> MemberRules:
    """The feedback rules implied by the dismisses in a member's (bounded) history."""
    rules = MemberRules()
    for it in sorted(state.history, key=lambda x: (x.event_time, x.event_id)):
        if it.action != "dismiss" or it.reason is None or it.job is None:
            continue
        job = job_lookup(it.job.job_id)
        if job is None:
            # the catalog forgot it: what the history card remembers still masks it
            job = {"job_id": it.job.job_id, "title": it.job.title, "location": it.job.location,
                   "seniority": it.job.seniority or "mid"}
        rules = rules.update(it.reason, job)
    return rules


def query_terms(text: str) -> dict[str, float]:
    """A search query as index terms: its words as title terms, the whole text as an
    occupation and as a skill (the index drops the terms no job has)."""
    w = SEARCH_TERM_WEIGHTS
    out: dict[str, float] = {}
    for tok in title_tokens(text):
        out[title_term(tok)] = out.get(title_term(tok), 0.0) + w["title"]
    phrase = normalize(text)
    if phrase:
        out[occupation_term(phrase)] = w["occ"]
        out[skill_term(phrase)] = w["skill"]
    return out


def surface_query(
    state: MemberState,
    surface: Surface | str,
    job_lookup: JobLookup,
    *,
    embedder: Embedder | None = None,
    links: LinkGraph | None = None,
    query: str | None = None,
    use_rules: bool = True,
) -> Query:
    """The index query that serves `state`'s member on `surface`."""
    surface = Surface(surface)
    if state.profile is None:
        raise ValueError(f"member {state.member_id!r} has no profile yet; retrieval needs one")
    rules = member_rules(state, job_lookup) if use_rules else None
    q = member_query(state.profile, embedder, links, rules,
                     promoted_only=surface is Surface.PROMOTED, field_weights=MEMBER_FIELD_WEIGHTS)
    if surface is Surface.SEARCH and query:
        terms = dict(q.terms)
        for t, w in query_terms(query).items():
            terms[t] = terms.get(t, 0.0) + w
        q = replace(q, terms=terms)
    return q
