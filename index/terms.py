"""Standardized terms: the vocabulary both the inverted index and the link graph speak.

A term is `<field>:<normalized value>`, e.g. `skill:python`, `loc:berlin`,
`occ:software developers`, `title:engineer`, `sen:senior`, `co:c17`. Jobs are sets of
terms; queries are weighted term vectors over the same strings.
"""
from __future__ import annotations

import re
import threading
from typing import Iterable

import numpy as np

from index.records import SENIORITY_LEVELS, JobRecord, MemberRecord, seniority_rank

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


_LOCATION_PUNCTUATION = re.compile(r"[^\w\s,]+")


def normalize_location(location: str) -> str:
    """One spelling per place: case, punctuation and spacing aside, parts (city, region,
    country) joined by ", ". "Seattle, WA", "seattle ,wa." and "SEATTLE,  WA" agree."""
    text = _LOCATION_PUNCTUATION.sub(" ", str(location).lower())
    return ", ".join(p for p in (" ".join(part.split()) for part in text.split(",")) if p)


def location_term(location: str) -> str:
    return f"loc:{normalize_location(location)}"


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
    if seniority_rank(seniority) is not None:  # an unknown level says nothing
        out.append(seniority_term(seniority))
    return out


def job_terms(job: JobRecord) -> tuple[str, ...]:
    """Every term a job is indexed under (deduplicated, order kept)."""
    out = _profile_terms(job.title, job.occupation, job.skills, job.seniority)
    if normalize_location(job.location):
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


def term_keys(terms: Iterable[str], count: int = -1) -> np.ndarray:
    """int64 keys of terms: what a query carries instead of strings, so that a batch of
    queries finds its columns with one vectorized lookup (`Vocabulary.columns_of_keys`).
    Python's string hash: a term's key is the same everywhere in one process, and keys
    never leave it (a pickled `Query` drops them and recomputes them when loaded)."""
    return np.fromiter(map(hash, terms), np.int64, count)


class KeyTable:
    """Immutable int64 key -> column map with a vectorized lookup: a direct-mapped table
    indexed by a key's low bits, kept at most a quarter full, and a sorted overflow
    array for keys whose slot is taken: one read per key for a batch's ~40 terms a query,
    where a binary search takes a dozen."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._slot_keys = np.zeros(size, np.int64)
        self._slot_cols = np.full(size, -1, np.int64)  # -1: empty, so a miss reads as unknown
        self._over_keys = np.zeros(0, np.int64)  # sorted
        self._over_cols = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int((self._slot_cols >= 0).sum()) + len(self._over_keys)

    def with_entries(self, keys: np.ndarray, cols: np.ndarray) -> "KeyTable":
        """A new table holding these entries too (this one is left as it is, for readers)."""
        if len(np.unique(keys)) < len(keys) or (self.lookup(keys) >= 0).any():
            raise RuntimeError("two terms share a 64-bit key; queries could not tell them apart")
        size = self.size
        while size < 4 * (len(self) + len(keys)):
            size *= 2
        out = KeyTable(size)
        if size == self.size:
            out._slot_keys, out._slot_cols = self._slot_keys.copy(), self._slot_cols.copy()
            out._over_keys, out._over_cols = self._over_keys, self._over_cols
        else:  # grown: every entry moves to its slot in the larger table
            held = self._slot_cols >= 0
            keys = np.concatenate([self._slot_keys[held], self._over_keys, keys])
            cols = np.concatenate([self._slot_cols[held], self._over_cols, cols])
        out._place(keys, cols)
        return out

    def _place(self, keys: np.ndarray, cols: np.ndarray) -> None:
        slots = keys & (self.size - 1)
        first = np.zeros(len(keys), np.bool_)
        first[np.unique(slots, return_index=True)[1]] = True
        placed = first & (self._slot_cols[slots] < 0)  # the first new key of a free slot takes it
        self._slot_keys[slots[placed]], self._slot_cols[slots[placed]] = keys[placed], cols[placed]
        over_keys = np.concatenate([self._over_keys, keys[~placed]])
        order = np.argsort(over_keys)
        self._over_keys, self._over_cols = over_keys[order], np.concatenate([self._over_cols, cols[~placed]])[order]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Columns of the keys, -1 for a key not in the table."""
        slots = keys & (self.size - 1)
        cols = np.where(self._slot_keys[slots] == keys, self._slot_cols[slots], -1)
        if len(self._over_keys):
            miss = np.flatnonzero(cols < 0)
            at = np.minimum(np.searchsorted(self._over_keys, keys[miss]), len(self._over_keys) - 1)
            found = self._over_keys[at] == keys[miss]
            cols[miss[found]] = self._over_cols[at[found]]
        return cols


class Vocabulary:
    """Append-only term -> column map; a column, once given, never changes meaning."""

    def __init__(self) -> None:
        self._col: dict[str, int] = {}
        self._terms: list[str] = []
        # term key -> column; replaced whole on growth, so a lookup needs no lock
        self._by_key = KeyTable()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._terms)

    def term(self, col: int) -> str:
        return self._terms[col]

    def add(self, terms: Iterable[str]) -> list[int]:
        with self._lock:
            cols, first_new = [], len(self._terms)
            for t in terms:
                c = self._col.get(t)
                if c is None:
                    c = len(self._terms)
                    self._col[t] = c
                    self._terms.append(t)
                cols.append(c)
            if len(self._terms) > first_new:
                self._index_keys(first_new)
            return cols

    def _index_keys(self, first_new: int) -> None:
        """Add the keys of columns first_new.. to the key table (`columns_of_keys`)."""
        self._by_key = self._by_key.with_entries(term_keys(self._terms[first_new:]),
                                                 np.arange(first_new, len(self._terms), dtype=np.int64))

    def columns(self, terms: list[str]) -> np.ndarray:
        """Columns of the terms as an int64 array, -1 for a term never seen."""
        return self.columns_of_keys(term_keys(terms, len(terms)))

    def columns_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """Columns of the term keys (`term_keys`) as an int64 array, -1 for a term never seen."""
        return self._by_key.lookup(keys)
