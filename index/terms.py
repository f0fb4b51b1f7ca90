"""Standardized terms: the vocabulary both the inverted index and the link graph speak.

A term is `<field>:<normalized value>`, e.g. `skill:python`, `loc:berlin`,
`occ:software developers`, `title:engineer`, `sen:senior`, `co:c17`. Jobs are sets of
terms; queries are weighted term vectors over the same strings.
"""
from __future__ import annotations

import re
import threading
from itertools import repeat
from typing import Iterable

import numpy as np

from index.records import SENIORITY_LEVELS, JobRecord, MemberRecord

_TOKEN = re.compile(r"[a-z0-9+#]+")
# Title words that say nothing about the job itself.
_TITLE_STOPWORDS = frozenset({"a", "an", "and", "the", "of", "for", "in", "at", "to", "with", "i", "ii", "iii"})


def normalize(text: str) -> str:
    return " ".join(str(text).lower().split())


def title_tokens(title: str) -> list[str]:
    return [t for t in _TOKEN.findall(str(title).lower()) if t not in _TITLE_STOPWORDS]


def title_term(token: str) -> str:
    return f"title:{token}"


def occupation_term(occupation: str) -> str:
    return f"occ:{normalize(occupation)}"


def skill_term(skill: str) -> str:
    return f"skill:{normalize(skill)}"


def location_term(location: str) -> str:
    return f"loc:{normalize(location)}"


def seniority_term(level: str) -> str:
    return f"sen:{normalize(level)}"


def company_term(company_id: str) -> str:
    return f"co:{normalize(company_id)}"


PROMOTED_TERM = "flag:promoted"
SENIORITY_TERMS: tuple[str, ...] = tuple(seniority_term(s) for s in SENIORITY_LEVELS)


def _profile_terms(title: str, occupation: str, skills: Iterable[str], seniority: str) -> list[str]:
    out = [title_term(t) for t in title_tokens(title)]
    if occupation:
        out.append(occupation_term(occupation))
    out += [skill_term(s) for s in skills if normalize(s)]
    out.append(seniority_term(seniority))
    return out


def job_terms(job: JobRecord) -> tuple[str, ...]:
    """Every term a job is indexed under (deduplicated, order kept)."""
    out = _profile_terms(job.title, job.occupation, job.skills, job.seniority)
    out.append(location_term(job.location))
    if job.company_id:
        out.append(company_term(job.company_id))
    if job.promoted:
        out.append(PROMOTED_TERM)
    return tuple(dict.fromkeys(out))


def member_attributes(member: MemberRecord) -> tuple[str, ...]:
    """A member's attributes in term form: what the link graph learns links from."""
    return tuple(dict.fromkeys(_profile_terms(member.title, member.occupation, member.skills, member.seniority)))


def job_attributes(job: JobRecord) -> tuple[str, ...]:
    """The job attributes links point to: what the job is, not where or whose."""
    return tuple(dict.fromkeys(_profile_terms(job.title, job.occupation, job.skills, job.seniority)))


class Vocabulary:
    """Append-only term -> column map; a column, once given, never changes meaning."""

    def __init__(self) -> None:
        self._col: dict[str, int] = {}
        self._terms: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._terms)

    def term(self, col: int) -> str:
        return self._terms[col]

    def add(self, terms: Iterable[str]) -> list[int]:
        with self._lock:
            cols = []
            for t in terms:
                c = self._col.get(t)
                if c is None:
                    c = len(self._terms)
                    self._col[t] = c
                    self._terms.append(t)
                cols.append(c)
            return cols

    def columns(self, terms: list[str]) -> np.ndarray:
        """Columns of the terms as an int64 array, -1 for a term never seen."""
        return np.fromiter(map(self._col.get, terms, repeat(-1)), np.int64, len(terms))  # C-level loop
