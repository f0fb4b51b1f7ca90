"""Hire-graph learned links: which seeker attributes lead to which job attributes.

Every confirmed hire is one observation of (member attributes) x (job attributes).
For a seeker attribute a and a job attribute b, with N hires, c_a hires whose member
had a, c_b hires whose job had b, and c_ab hires with both:

    pmi(a, b)    = ln(c_ab * N / (c_a * c_b))          (lift, in log form)
    weight(a, b) = c_ab / (c_ab + shrinkage) * max(pmi, 0)

The shrinkage factor pulls rare pairs toward zero (smoothing); pairs seen fewer than
`min_support` times are not links at all. A member's attributes expanded through the
links form the term query that retrieves jobs they are qualified for. Counts update
online, one hire at a time; weights are computed from the counts when read, so they
always reflect every hire so far. Any link can be inspected (`link`) or pinned by hand
(`adjust`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from index.records import as_job, as_member
from index.terms import job_attributes, member_attributes


@dataclass(frozen=True)
class Link:
    src: str  # seeker attribute, e.g. "occ:nurse"
    dst: str  # job attribute, e.g. "skill:patient care"
    support: int  # hires with both
    src_count: int  # hires whose member had src
    dst_count: int  # hires whose job had dst
    hires: int  # all hires seen
    pmi: float
    weight: float
    adjusted: bool = False  # weight pinned by `adjust`


def _as_terms(obj: Any, kind: str) -> tuple[str, ...]:
    """Term strings as given, or the attributes of a member/job (dict or record)."""
    if isinstance(obj, Mapping) or hasattr(obj, f"{kind}_id"):
        return member_attributes(as_member(obj)) if kind == "member" else job_attributes(as_job(obj))
    return tuple(dict.fromkeys(obj))


class LinkGraph:
    def __init__(self, min_support: int = 2, shrinkage: float = 1.0):
        if min_support < 1 or shrinkage < 0:
            raise ValueError(f"need min_support >= 1 and shrinkage >= 0, got {min_support}, {shrinkage}")
        self.min_support = min_support
        self.shrinkage = shrinkage
        self.hires = 0
        self.src_counts: dict[str, int] = defaultdict(int)
        self.dst_counts: dict[str, int] = defaultdict(int)
        self.pair_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.overrides: dict[tuple[str, str], float] = {}

    def add_hire(self, member_attrs: Iterable[str] | Any, job_attrs: Iterable[str] | Any) -> None:
        """Count one confirmed hire. Accepts term strings or member/job dicts/records."""
        src = _as_terms(member_attrs, "member")
        dst = _as_terms(job_attrs, "job")
        self.hires += 1
        for a in src:
            self.src_counts[a] += 1
            row = self.pair_counts[a]
            for b in dst:
                row[b] += 1
        for b in dst:
            self.dst_counts[b] += 1

    def _weight(self, support: int, src_count: int, dst_count: int) -> tuple[float, float]:
        pmi = math.log(support * self.hires / (src_count * dst_count))
        return pmi, support / (support + self.shrinkage) * max(pmi, 0.0)

    def link(self, src: str, dst: str) -> Link | None:
        """The link src -> dst with its counts and weight; None if never co-observed."""
        support = self.pair_counts.get(src, {}).get(dst, 0)
        if support == 0 and (src, dst) not in self.overrides:
            return None
        if support:
            pmi, weight = self._weight(support, self.src_counts[src], self.dst_counts[dst])
            if support < self.min_support:
                weight = 0.0
        else:
            pmi, weight = 0.0, 0.0
        pinned = (src, dst) in self.overrides
        return Link(src, dst, support, self.src_counts.get(src, 0), self.dst_counts.get(dst, 0),
                    self.hires, pmi, self.overrides[(src, dst)] if pinned else weight, pinned)

    def links_from(self, src: str, top: int | None = None) -> list[Link]:
        """Active links (weight > 0) out of one seeker attribute, strongest first."""
        dsts = set(self.pair_counts.get(src, {})) | {d for s, d in self.overrides if s == src}
        found = [l for l in (self.link(src, d) for d in dsts) if l is not None and l.weight > 0]
        found.sort(key=lambda l: (-l.weight, l.dst))
        return found[:top] if top is not None else found

    def adjust(self, src: str, dst: str, weight: float | None) -> None:
        """Pin a link's weight by hand (0 switches it off); None returns it to learning."""
        if weight is None:
            self.overrides.pop((src, dst), None)
        else:
            self.overrides[(src, dst)] = float(weight)

    def expand(self, member_attrs: Iterable[str] | Any, top: int = 64
               ) -> tuple[dict[str, float], dict[str, tuple[tuple[str, float], ...]]]:
        """Job-term query from a member: dst -> summed link weight, and its sources."""
        total: dict[str, float] = defaultdict(float)
        sources: dict[str, list[tuple[str, float]]] = defaultdict(list)
        n, lam, min_support = self.hires, self.shrinkage, self.min_support
        pinned_from: dict[str, dict[str, float]] = defaultdict(dict)
        for (s, d), w in self.overrides.items():
            pinned_from[s][d] = w
        for a in _as_terms(member_attrs, "member"):
            # the same formula as `link`, inlined: this loop runs per retrieval
            ca, pins = self.src_counts.get(a, 0), pinned_from.get(a, {})
            for b, support in self.pair_counts.get(a, {}).items():
                if b in pins or support < min_support:
                    continue
                pmi = math.log(support * n / (ca * self.dst_counts[b]))
                if pmi > 0:
                    w = support / (support + lam) * pmi
                    total[b] += w
                    sources[b].append((a, w))
            for b, w in pins.items():
                if w > 0:
                    total[b] += w
                    sources[b].append((a, w))
        best = sorted(total, key=lambda d: (-total[d], d))[:top]
        return {d: total[d] for d in best}, {d: tuple(sources[d]) for d in best}

    # ---- state for a changelog-backed table --------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_support": self.min_support,
            "shrinkage": self.shrinkage,
            "hires": self.hires,
            "src_counts": dict(self.src_counts),
            "dst_counts": dict(self.dst_counts),
            "pair_counts": {a: dict(row) for a, row in self.pair_counts.items()},
            "overrides": [[s, d, w] for (s, d), w in self.overrides.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LinkGraph":
        g = cls(int(data["min_support"]), float(data["shrinkage"]))
        g.hires = int(data["hires"])
        g.src_counts.update(data["src_counts"])
        g.dst_counts.update(data["dst_counts"])
        for a, row in data["pair_counts"].items():
            g.pair_counts[a].update(row)
        g.overrides = {(s, d): float(w) for s, d, w in data.get("overrides", [])}
        return g
