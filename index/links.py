"""Learned links: which seeker attributes lead to which job attributes.

Every confirmed hire, and every application, is one observation of (member
attributes) x (job attributes). For a seeker attribute a and a job attribute b, with N
observations, c_a of them whose member had a, c_b whose job had b, and c_ab with both:

    pmi(a, b)    = ln(c_ab * N / (c_a * c_b))          (lift, in log form)
    weight(a, b) = c_ab / (c_ab + shrinkage) * max(pmi, 0)

Hires are the design's signal (a confirmed match), but they are rare: a marketplace
makes five applies for each hire, and the paths members take into adjacent occupations
show in applies long before enough hires confirm them. So applies count too, one
observation each, and a hire (which follows its apply) counts once more. Hires count
for ever; applies, optionally, only within a window of event time (`apply_window_s`).
docs/graph-signals.md measures hires alone against hires + applies.

The shrinkage factor pulls rare pairs toward zero (smoothing); pairs seen fewer than
`min_support` times are not links at all. A member's attributes expanded through the
links form the term query that retrieves jobs they are qualified for. Counts update
online, one event at a time; weights are computed from the counts when read, so they
always reflect every observation so far. Any link can be inspected (`link`) or pinned
by hand (`adjust`).
"""
from __future__ import annotations

import heapq
import itertools
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from index.records import as_job, as_member
from index.terms import job_attributes, member_attributes


@dataclass(frozen=True)
class Link:
    src: str  # seeker attribute, e.g. "occ:nurse"
    dst: str  # job attribute, e.g. "skill:patient care"
    support: int  # observations (hires, applies) with both
    src_count: int  # observations whose member had src
    dst_count: int  # observations whose job had dst
    observations: int  # all hires and applies seen
    pmi: float
    weight: float
    adjusted: bool = False  # weight pinned by `adjust`


def _as_terms(obj: Any, kind: str) -> tuple[str, ...]:
    """Term strings as given, or the attributes of a member/job (dict or record)."""
    if isinstance(obj, Mapping) or hasattr(obj, f"{kind}_id"):
        return member_attributes(as_member(obj)) if kind == "member" else job_attributes(as_job(obj))
    return tuple(dict.fromkeys(obj))


def _observed(member: Any, job: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An observation's (member terms, job terms), interned: the apply window keeps weeks
    of them, and the counts' keys are the same few thousand strings. (A query's terms,
    read once, are not worth it.)"""
    return tuple(map(sys.intern, _as_terms(member, "member"))), tuple(map(sys.intern, _as_terms(job, "job")))


def _bump(counts: dict[str, int], key: str, n: int) -> None:
    """counts[key] += n, the key gone at 0: a pair that left with the window is no link."""
    left = counts[key] + n
    if left:
        counts[key] = left
    else:
        del counts[key]


class LinkGraph:
    """The counts behind the links, and the links read from them (module docstring).

    `apply_window_s`: applies count only while they are at most this many seconds
    (event time) behind the newest apply seen, then they are taken out again; hires
    count for ever. A serving replica learns applies from what Kafka keeps of them
    (member-actions' retention) and hires from all of them, so with the window at the
    retention every replica holds the same links whenever it started. None: applies
    count for ever."""

    def __init__(self, min_support: int = 2, shrinkage: float = 1.0, apply_window_s: float | None = None):
        if min_support < 1 or shrinkage < 0:
            raise ValueError(f"need min_support >= 1 and shrinkage >= 0, got {min_support}, {shrinkage}")
        if apply_window_s is not None and apply_window_s <= 0:
            raise ValueError(f"apply_window_s must be positive (or None), got {apply_window_s}")
        self.min_support = min_support
        self.shrinkage = shrinkage
        self.apply_window_s = apply_window_s
        self.hires = 0
        self.applies = 0  # counted now: inside the window
        # the window's applies, oldest first: (event time, arrival number, src, dst)
        self._window: list[tuple[float, int, tuple[str, ...], tuple[str, ...]]] = []
        self._arrivals = itertools.count()
        self._newest_apply = -math.inf
        self.src_counts: dict[str, int] = defaultdict(int)
        self.dst_counts: dict[str, int] = defaultdict(int)
        self.pair_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.overrides: dict[tuple[str, str], float] = {}
        # Array mirrors of the counts, for `expand`: job attribute -> number, its
        # observation count by number, and per seeker attribute its (job attributes,
        # supports), built when first expanded and dropped when an observation changes that row.
        self._dst_no: dict[str, int] = {}
        self._dst_names: list[str] = []
        self._dst_seen = np.zeros(64, np.float64)
        self._rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def observations(self) -> int:
        """N of the formula: every hire and every apply counted."""
        return self.hires + self.applies

    def add_hire(self, member_attrs: Iterable[str] | Any, job_attrs: Iterable[str] | Any) -> None:
        """Count one confirmed hire. Accepts term strings or member/job dicts/records."""
        self._observe(*_observed(member_attrs, job_attrs), 1)
        self.hires += 1

    def add_apply(self, member_attrs: Iterable[str] | Any, job_attrs: Iterable[str] | Any,
                  at: float | None = None) -> bool:
        """Count one application, as `add_hire` counts a hire. With a window, `at` is its
        event time (epoch seconds): an apply already outside the window is not counted
        (False), and the applies the newest one pushes out of it are taken out."""
        src, dst = _observed(member_attrs, job_attrs)
        if self.apply_window_s is not None:
            if at is None:
                raise ValueError("a windowed LinkGraph needs each apply's event time (`at`)")
            self._newest_apply = max(self._newest_apply, at)
            horizon = self._newest_apply - self.apply_window_s
            self._expire(horizon)
            if at < horizon:
                return False
            heapq.heappush(self._window, (at, next(self._arrivals), src, dst))
        self._observe(src, dst, 1)
        self.applies += 1
        return True

    def _expire(self, horizon: float) -> None:
        while self._window and self._window[0][0] < horizon:
            _, _, src, dst = heapq.heappop(self._window)
            self._observe(src, dst, -1)
            self.applies -= 1

    def _observe(self, src: tuple[str, ...], dst: tuple[str, ...], n: int) -> None:
        """Add n (1, or -1 for an apply leaving the window) to every count the pair touches."""
        for a in src:
            _bump(self.src_counts, a, n)
            row = self.pair_counts[a]
            for b in dst:
                _bump(row, b, n)
            if not row:
                del self.pair_counts[a]
            self._rows.pop(a, None)
        for b in dst:
            _bump(self.dst_counts, b, n)
            self._count_dst(b, n)

    def _count_dst(self, dst: str, seen: int) -> None:
        """The array mirror of dst_counts[dst] += seen."""
        no = self._number(dst)  # first: it may grow the array
        self._dst_seen[no] += seen

    def _number(self, dst: str) -> int:
        """dst's place in the array mirrors (a new one gets the next, seen 0 times)."""
        no = self._dst_no.get(dst)
        if no is None:
            no = self._dst_no[dst] = len(self._dst_names)
            self._dst_names.append(dst)
            if no == len(self._dst_seen):
                self._dst_seen = np.concatenate([self._dst_seen, np.zeros(no, np.float64)])
        return no

    def _weight(self, support: int, src_count: int, dst_count: int) -> tuple[float, float]:
        pmi = math.log(support * self.observations / (src_count * dst_count))
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
                    self.observations, pmi, self.overrides[(src, dst)] if pinned else weight, pinned)

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
        """Job-term query from a member: dst -> summed link weight, and its sources.

        Every link out of the member's attributes is weighed at once with array
        arithmetic over their rows: this runs for every score request, and with 20k
        hires behind the graph a member has thousands of links (bench/retrieval.py's
        "member queries built" line, 100k jobs: 8.2 s for 1,000 with a Python loop per
        link, 0.7 s with the arrays). Pinned links replace learned ones. Strongest first, ties by name."""
        n, lam = self.observations, self.shrinkage
        pinned_from: dict[str, dict[str, float]] = defaultdict(dict)
        for (s, d), w in self.overrides.items():
            pinned_from[s][d] = w
        attrs, nos, weights = [], [], []
        for a in _as_terms(member_attrs, "member"):
            dst, support = self._row(a)
            pins = pinned_from.get(a, {})
            keep = support >= self.min_support
            if pins:
                keep &= ~np.isin(dst, [self._dst_no.get(d, -1) for d in pins])
            dst, support = dst[keep], support[keep]
            pmi = np.log(support * n / (self.src_counts.get(a, 0) * self._dst_seen[dst]))
            learned = pmi > 0
            pinned = [(d, w) for d, w in pins.items() if w > 0]
            nos.append(np.concatenate([dst[learned], np.array([self._number(d) for d, _ in pinned], np.int64)]))
            weights.append(np.concatenate([(support / (support + lam) * pmi)[learned],
                                           np.array([w for _, w in pinned], np.float64)]))
            attrs.append(a)
        if not attrs:
            return {}, {}
        all_nos = np.concatenate(nos)
        total = np.bincount(all_nos, weights=np.concatenate(weights), minlength=len(self._dst_names))
        linked = np.flatnonzero(total)  # every weight summed is > 0
        if len(linked) > top:  # every dst tied with the top-th, so that ties cut by name
            linked = linked[total[linked] >= np.partition(total[linked], len(linked) - top)[len(linked) - top]]
        names = self._dst_names
        best = sorted(linked.tolist(), key=lambda no: (-total[no], names[no]))[:top]
        sources: dict[int, list[tuple[str, float]]] = {no: [] for no in best}
        chosen = np.zeros(len(total), np.bool_)
        chosen[best] = True
        for a, a_nos, a_weights in zip(attrs, nos, weights):
            kept = chosen[a_nos]
            for no, w in zip(a_nos[kept].tolist(), a_weights[kept].tolist()):
                sources[no].append((a, w))
        return {names[no]: float(total[no]) for no in best}, {names[no]: tuple(sources[no]) for no in best}

    def _row(self, src: str) -> tuple[np.ndarray, np.ndarray]:
        """(job attribute numbers, supports) of the pairs out of src, as arrays."""
        row = self._rows.get(src)
        if row is None:
            pairs = self.pair_counts.get(src, {})
            row = (np.fromiter((self._dst_no[d] for d in pairs), np.int64, len(pairs)),
                   np.fromiter(pairs.values(), np.float64, len(pairs)))
            self._rows[src] = row
        return row

    # ---- state for a changelog-backed table --------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_support": self.min_support,
            "shrinkage": self.shrinkage,
            "hires": self.hires,
            "applies": self.applies,
            "src_counts": dict(self.src_counts),
            "dst_counts": dict(self.dst_counts),
            "pair_counts": {a: dict(row) for a, row in self.pair_counts.items()},
            "overrides": [[s, d, w] for (s, d), w in self.overrides.items()],
            "apply_window_s": self.apply_window_s,
            "window": [[at, list(src), list(dst)] for at, _, src, dst in sorted(self._window)],
            "newest_apply": None if math.isinf(self._newest_apply) else self._newest_apply,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LinkGraph":
        g = cls(int(data["min_support"]), float(data["shrinkage"]), data.get("apply_window_s"))
        g.hires = int(data["hires"])
        g.applies = int(data.get("applies", 0))  # state written before applies counted
        g.src_counts.update(data["src_counts"])
        for b, seen in data["dst_counts"].items():
            g.dst_counts[b] += seen
            g._count_dst(b, seen)
        for a, row in data["pair_counts"].items():
            g.pair_counts[a].update(row)
        g.overrides = {(s, d): float(w) for s, d, w in data.get("overrides", [])}
        g._window = [(float(at), next(g._arrivals), tuple(src), tuple(dst)) for at, src, dst in data.get("window", [])]
        heapq.heapify(g._window)
        if data.get("newest_apply") is not None:
            g._newest_apply = float(data["newest_apply"])
        return g
