"""The live job index: one small API over segments of jobs.

    index = JobIndex.create("hybrid,exact", dim=64)          # or "dense,approx", "term,exact", ...
    index.upsert(jobs)                                        # posted / updated
    index.delete(job_ids)                                     # closed
    result = index.search([member_query(m, index.embedder, links, rules)], k=100)
    result.ids, result.scores, result.reasons
    index.compact()                                           # fold the delta into the main arrays

Backend (CuPy / NumPy) and exact / approximate are construction choices; callers never
branch on them. Writes go to a small delta segment and tombstones; `compact()` rebuilds
the main segment off to the side and swaps it in, so queries never wait for it.
State is an immutable snapshot swapped by one reference assignment: a search reads one
consistent snapshot, and every write is a pure `(state, op) -> state` step.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from index.ann import AnnIndex, build_ann
from index.embedder import Embedder, HashedTermEmbedder
from index.query import Query
from index.records import JobRecord, as_job
from index.segment import Segment
from index.terms import Vocabulary, job_terms
from index.topk import NEG_INF, topk
from index.xp import Backend, BackendName, get_backend

DEVICE_SCORE_FLOATS = 1 << 28  # matrix scan on a GPU: a chunk's score matrix holds up to this many (1 GiB)

Scoring = Literal["hybrid", "dense", "term"]
SearchMode = Literal["exact", "approx", "ivf", "hnsw"]
ExactScan = Literal["auto", "fused", "matrix"]


@dataclass(frozen=True)
class IndexConfig:
    scoring: Scoring = "hybrid"  # which signals count: all, embeddings only, terms+links only
    search: SearchMode = "exact"  # exact one-pass, or faiss candidates rescored exactly
    dim: int = 64
    backend: BackendName = "auto"
    dense_weight: float = 1.0
    term_weight: float = 1.0
    link_weight: float = 1.0
    query_chunk: int = 64  # matrix scan and approximate mode: queries scored together (bounds the
    # (chunk x catalog) score matrix, and the candidate union each query of a chunk rescans)
    fused_chunk: int = 1024  # fused scan: queries scored together (it holds a chunk x 2,048 block)
    # how exact scores become top-k: "fused" blocks + running top-k, never writing the score
    # matrix (index/scan.py, NumPy only); "matrix" the whole matrix then topk (any backend);
    # "auto" fused on NumPy, matrix on CuPy
    exact_scan: ExactScan = "auto"
    delta_limit: int | None = 20_000  # upsert compacts once the delta holds this many jobs (each write
    # rebuilds the delta, so this bounds a write's cost)
    candidates_per_k: int = 4  # approximate mode: proposals rescored per requested result (IVF's
    # 4-bit codes rank roughly: at 1M jobs, d=128, nprobe 96, 200 proposals gave recall@100 0.917, 400 0.976)
    hnsw_max: int = 50_000  # approximate mode: HNSW up to this many jobs, IVF above (faster to build)
    target_recall: float = 0.95  # approximate mode: breadth calibrated to this recall@100
    # most frequent terms scored as dense columns (index/segment.py); None: 32 for the matrix
    # scan, 0 for the fused one (its block postings make long lists cheap, and at 1M jobs
    # 32 more product columns cost more than the lists they replace: 1.34x vs 1.28x dense)
    head_terms: int | None = None

    def __post_init__(self) -> None:
        if self.scoring not in ("hybrid", "dense", "term"):
            raise ValueError(f"unknown scoring {self.scoring!r}; expected hybrid, dense or term")
        if self.search not in ("exact", "approx", "ivf", "hnsw"):
            raise ValueError(f"unknown search {self.search!r}; expected exact, approx, ivf or hnsw")
        if self.search != "exact" and self.scoring == "term":
            raise ValueError("approximate search needs embeddings; use 'term,exact'")
        if self.exact_scan not in ("auto", "fused", "matrix"):
            raise ValueError(f"unknown exact_scan {self.exact_scan!r}; expected auto, fused or matrix")

    @classmethod
    def parse(cls, spec: str, **overrides: Any) -> "IndexConfig":
        """'hybrid,exact' / 'dense,approx' / 'hybrid,ivf' -> IndexConfig (faiss-style)."""
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"index spec {spec!r} must be '<scoring>[,<search>]', e.g. 'hybrid,exact'")
        kw: dict[str, Any] = {"scoring": parts[0]}
        if len(parts) == 2:
            kw["search"] = parts[1]
        kw.update(overrides)
        return cls(**kw)


@dataclass(frozen=True)
class Reason:
    """Why a job was retrieved: the parts of its fused score and what matched."""

    score: float
    similarity: float  # <query embedding, job embedding>
    term_score: float  # sum of the normalized query term weights the job matched
    link_score: float  # the same for learned-link terms
    penalty: float  # sum of feedback-rule penalties the job took
    matched_terms: tuple[str, ...]
    matched_links: tuple[tuple[str, str, float], ...]  # (member attribute, job term, link weight)

    def as_strings(self, max_terms: int = 4, max_links: int = 2) -> list[str]:
        """Short reasons a person (or a UI) can show, what a result's item carries: the
        terms matched, the strongest learned links, a feedback penalty."""
        out = [f"{kind} match: {value}" for kind, value in (t.split(":", 1) for t in self.matched_terms[:max_terms])]
        out += [f"learned link {src} -> {dst} ({w:.2f})" for src, dst, w in
                sorted(self.matched_links, key=lambda x: -x[2])[:max_links]]
        if self.penalty:
            out.append(f"feedback penalty -{self.penalty:.2f}")
        return out


@dataclass
class SearchResult:
    ids: np.ndarray  # (queries, k) object; None where fewer than k jobs qualified
    scores: np.ndarray  # (queries, k) float32; -inf where ids is None
    _explain: Callable[[], list[list[Reason]]] = field(repr=False, default=lambda: [])

    @cached_property
    def reasons(self) -> list[list[Reason]]:
        """Per query, one Reason per returned job (computed on first access)."""
        return self._explain()

    def hits(self, i: int) -> list[tuple[str, float]]:
        return [(j, float(s)) for j, s in zip(self.ids[i], self.scores[i]) if j is not None]


@dataclass(frozen=True)
class _State:
    main: Segment
    main_dead: np.ndarray  # sorted rows of `main` that are closed or superseded
    delta: Segment  # recent upserts; rebuilt (small) on each write, never tombstoned

    @property
    def live(self) -> int:
        return self.main.size - len(self.main_dead) + self.delta.size


@dataclass(frozen=True)
class _Upsert:
    job_ids: tuple[str, ...]
    embeddings: np.ndarray
    terms: sp.csr_matrix


@dataclass(frozen=True)
class _Delete:
    job_ids: tuple[str, ...]


class JobIndex:
    def __init__(self, config: IndexConfig | None = None, embedder: Embedder | None = None):
        self.config = config or IndexConfig()
        self.backend: Backend = get_backend(self.config.backend)
        self.embedder: Embedder = embedder or HashedTermEmbedder(self.config.dim)
        if self.embedder.dim != self.config.dim:
            raise ValueError(f"embedder dim {self.embedder.dim} != index dim {self.config.dim}")
        if self.config.exact_scan == "fused" and self.backend.name != "numpy":
            raise ValueError(f"exact_scan 'fused' is a CPU scan; the {self.backend.name} backend uses 'matrix'")
        fused = self.config.exact_scan == "fused" or (self.config.exact_scan == "auto" and self.backend.name == "numpy")
        self._scan: Literal["fused", "matrix"] = "fused" if fused else "matrix"
        self._head_terms = self.config.head_terms if self.config.head_terms is not None else (0 if self._fused else 32)
        self.vocab = Vocabulary()
        self._write_lock = threading.Lock()  # one writer at a time; readers never lock
        self._compact_lock = threading.Lock()
        self._pending: list[_Upsert | _Delete] | None = None  # writes made during a compaction
        self.reset()

    @classmethod
    def create(cls, spec: str = "hybrid,exact", *, embedder: Embedder | None = None, **overrides: Any) -> "JobIndex":
        return cls(IndexConfig.parse(spec, **overrides), embedder)

    def reset(self) -> None:
        """Forget every job (the vocabulary stays: columns never change meaning)."""
        with self._write_lock:
            empty = Segment.empty(self.backend, self.config.dim)
            self._state = _State(empty, np.zeros(0, np.int64), empty)

    def __len__(self) -> int:
        return self._state.live

    def __contains__(self, job_id: str) -> bool:
        return _locate(self._state, job_id) is not None

    @property
    def _fused(self) -> bool:
        return self._scan == "fused"

    @property
    def delta_size(self) -> int:
        return self._state.delta.size

    @property
    def ann(self) -> AnnIndex | None:
        return self._state.main.ann

    # ---- writes ------------------------------------------------------------------

    def upsert(self, jobs: Iterable[Any], embeddings: np.ndarray | None = None) -> None:
        """Add or replace jobs; the next search sees them. `embeddings` skips the embedder."""
        records: list[JobRecord] = [as_job(j) for j in jobs]
        if not records:
            return
        # last write wins inside one batch, as it does across batches
        last = {r.job_id: i for i, r in enumerate(records)}
        keep = sorted(last.values())
        records = [records[i] for i in keep]
        if embeddings is None:
            emb = self.embedder.embed_jobs(records)
        else:
            emb = np.asarray(embeddings, np.float32)[keep]
        if emb.shape != (len(records), self.config.dim):
            raise ValueError(f"embeddings have shape {emb.shape}, expected {(len(records), self.config.dim)}")
        term_lists = [job_terms(r) for r in records]
        indptr = np.zeros(len(records) + 1, np.int64)
        indptr[1:] = np.cumsum([len(t) for t in term_lists])
        cols = np.asarray(self.vocab.add(t for ts in term_lists for t in ts), np.int64)
        terms = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr),
                              shape=(len(records), len(self.vocab)))
        self._write(_Upsert(tuple(r.job_id for r in records), emb, terms))
        limit = self.config.delta_limit
        if limit is not None and self._state.delta.size >= limit:
            self.compact()

    def delete(self, job_ids: Iterable[str]) -> None:
        """Close jobs: they never come back, before or after compaction."""
        ids = tuple(dict.fromkeys(job_ids))
        if ids:
            self._write(_Delete(ids))

    def _write(self, op: _Upsert | _Delete) -> None:
        with self._write_lock:
            self._state = _apply(self._state, op, self.backend, self._scan)
            if self._pending is not None:
                self._pending.append(op)

    def compact(self) -> None:
        """Fold the delta and tombstones into new main arrays; queries go on meanwhile."""
        with self._compact_lock:
            with self._write_lock:
                snapshot = self._state
                self._pending = []
            main = _merge(snapshot, self.backend, self._head_terms, self._scan)
            if self.config.search != "exact" and main.size:
                kind = "auto" if self.config.search == "approx" else self.config.search
                main = replace(main, ann=build_ann(main.embeddings_host, kind, hnsw_max=self.config.hnsw_max,
                                                   candidates_per_k=self.config.candidates_per_k,
                                                   target_recall=self.config.target_recall))
            with self._write_lock:
                empty = Segment.empty(self.backend, self.config.dim)
                state = _State(main, np.zeros(0, np.int64), empty)
                for op in self._pending:  # writes that raced the rebuild, replayed in order
                    state = _apply(state, op, self.backend, self._scan)
                self._pending = None
                self._state = state

    # ---- reads -------------------------------------------------------------------

    def search(self, queries: Sequence[Query], k: int = 10, *, weights: Mapping[str, float] | None = None
               ) -> SearchResult:
        """Top-k jobs per query by fused score, batched; each with its Reason.

        weights: this call's fusion weights, e.g. {"dense": 0.5, "link": 2.0}; keys not
        given keep the index's (a per-call parameter, like faiss SearchParameters)."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        config = self.config
        if weights:
            unknown = set(weights) - {"dense", "term", "link"}
            if unknown:
                raise ValueError(f"unknown fusion weights {sorted(unknown)}; expected dense, term, link")
            config = replace(config, **{f"{name}_weight": float(w) for name, w in weights.items()})
        state = self._state  # one consistent snapshot for the whole batch
        queries = list(queries)
        n_q = len(queries)
        segments = [(seg, dead) for seg, dead in ((state.main, state.main_dead), (state.delta, None)) if seg.size]
        vals_parts, seg_parts, row_parts = [], [], []
        chunk = self._chunk_size(queries)
        for lo in range(0, max(n_q, 1), chunk):
            part = queries[lo: lo + chunk]
            if not part:
                break
            compiled = _compile(part, self.vocab, config)
            found = [self._search_segment(seg, dead, compiled, k) for seg, dead in segments]
            vals_parts.append(np.concatenate([v for v, _ in found], axis=1) if found
                              else np.zeros((len(part), 0), np.float32))
            row_parts.append(np.concatenate([r for _, r in found], axis=1) if found
                             else np.zeros((len(part), 0), np.int64))
            seg_parts.append(np.concatenate([np.full(r.shape, s, np.int8) for s, (_, r) in enumerate(found)], axis=1)
                             if found else np.zeros((len(part), 0), np.int8))
        if not vals_parts:
            vals_parts, row_parts, seg_parts = [np.zeros((0, 0), np.float32)], [np.zeros((0, 0), np.int64)], [np.zeros((0, 0), np.int8)]
        vals, rows, seg_no = np.concatenate(vals_parts), np.concatenate(row_parts), np.concatenate(seg_parts)
        if len(segments) > 1:  # merge the per-segment top-k lists
            order = np.argsort(-vals, axis=1, kind="stable")[:, :k]
            vals, rows, seg_no = (np.take_along_axis(a, order, axis=1) for a in (vals, rows, seg_no))
        width = vals.shape[1]
        if width < k:  # fewer jobs than k: the rest is "no result"
            pad = ((0, 0), (0, k - width))
            vals, rows, seg_no = np.pad(vals, pad, constant_values=NEG_INF), np.pad(rows, pad), np.pad(seg_no, pad)
        scores = np.ascontiguousarray(vals, dtype=np.float32)
        ids = _job_ids([seg for seg, _ in segments], seg_no, rows, scores != NEG_INF)
        located = (segments, seg_no, rows)
        return SearchResult(ids, scores, lambda: _explain(queries, located, scores, self.vocab, config))

    def _chunk_size(self, queries: list[Query]) -> int:
        """Queries scored together. The exact fused scan wants large chunks (one pass of
        the catalog per chunk), and so do dense-only queries in approximate mode (each
        rescores its own proposals; at 64 a chunk, 1,000 queries made 16 faiss calls and
        16 compilations). Other approximate queries rescan the union of their chunk's
        candidates, which grows with the chunk; the matrix scan holds a chunk x catalog
        score matrix: both keep query_chunk, except on a GPU, whose memory holds a larger
        matrix and whose every chunk costs a round of kernel launches."""
        if self.config.search == "exact":
            if self._fused:
                return self.config.fused_chunk
            if self.backend.name == "numpy":
                return self.config.query_chunk
            catalog = max(1, self._state.main.size + self._state.delta.size)
            return max(self.config.query_chunk, min(self.config.fused_chunk, DEVICE_SCORE_FLOATS // catalog))
        dense_only = not any(q.terms or q.links or q.penalties or q.forbid or q.must for q in queries)
        return self.config.fused_chunk if dense_only else self.config.query_chunk

    def _search_segment(self, seg: Segment, dead: np.ndarray | None, q: "_Compiled", k: int) -> tuple[np.ndarray, np.ndarray]:
        if seg.ann is None:
            return seg.search(k, fused=self._fused, **q.score_args(seg, dead, self.backend))
        # approximate: faiss proposes, then the same exact scoring runs over the proposals
        n_cand = min(seg.size, self.config.candidates_per_k * k + (0 if dead is None else len(dead)))
        proposals = seg.ann.search(q.embeddings_host, n_cand)
        if q.weights is None and q.forbid is None and not q.must_groups:
            return _rescore_own_proposals(seg, dead, q, proposals, k)
        rows = [proposals.ravel()]
        if q.weights is not None and q.weights.nnz:
            rows.append(_term_candidates(seg, q.weights, len(q.must_needed), n_cand, self._fused))
        cand = np.unique(np.concatenate(rows))
        cand = cand[cand >= 0]
        sub = seg.take(cand, with_terms=q.weights is not None or q.forbid is not None or bool(q.must_groups))
        sub_dead = None if dead is None else np.nonzero(np.isin(cand, dead))[0]

        def locate(job_id: str) -> int | None:  # a row of `sub`, through the parent's map
            r = seg.row_of.get(job_id)
            i = np.searchsorted(cand, r) if r is not None else len(cand)
            return int(i) if i < len(cand) and cand[i] == r else None

        vals, local = sub.search(k, fused=self._fused, **q.score_args(sub, sub_dead, self.backend, locate))
        return vals, cand[local]


def _job_ids(segments: list[Segment], seg_no: np.ndarray, rows: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The job id behind each (segment, row) hit, None where there is no hit. A take per
    segment: a boolean-masked gather of object arrays cost 14 ms at 1,000 x 100 hits over
    100k jobs, against 3-6 ms for this (25-33 ms over 1M jobs: each id's reference count
    is a cache miss)."""
    if len(segments) == 1:
        ids = segments[0].job_ids.take(rows)
    else:
        ids = np.full(rows.shape, None, dtype=object)
        for s, seg in enumerate(segments):
            here = seg_no == s
            ids[here] = seg.job_ids.take(rows[here])
    if not found.all():
        ids[~found] = None
    return ids


def _rescore_own_proposals(seg: Segment, dead: np.ndarray | None, q: "_Compiled", proposals: np.ndarray,
                           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense-only queries in approximate mode: each query's exact similarity over its
    own proposals (a gather), not over the union of the batch's, which grows with the
    batch and cost more than faiss itself. Tombstones and excluded ids are masked as
    in the exact scorer."""
    rows = np.maximum(proposals, 0)
    scores = seg.proposal_scores(q.embeddings_host, proposals)
    if dead is not None and len(dead):
        scores[np.isin(rows, dead)] = NEG_INF
    q_idx, excluded = q.excluded_rows(seg.row_of.get)
    pair, col = np.nonzero(rows[q_idx] == excluded[:, None])
    scores[q_idx[pair], col] = NEG_INF
    values, cols = topk(np, scores, k)
    return values, np.take_along_axis(rows, cols, axis=1)


# ---- pure state steps ------------------------------------------------------------


def _locate(state: _State, job_id: str) -> tuple[str, int] | None:
    r = state.delta.row_of.get(job_id)
    if r is not None:
        return "delta", r
    r = state.main.row_of.get(job_id)
    if r is not None and not _sorted_contains(state.main_dead, r):
        return "main", r
    return None


def _sorted_contains(a: np.ndarray, x: int) -> bool:
    i = np.searchsorted(a, x)
    return bool(i < len(a) and a[i] == x)


def _apply(state: _State, op: _Upsert | _Delete, backend: Backend, scan: Literal["fused", "matrix"]) -> _State:
    """One write as a pure step: tombstone old versions in main, rebuild the small delta."""
    ids = op.job_ids
    main_rows = [r for r in (state.main.row_of.get(j) for j in ids) if r is not None]
    dead = np.union1d(state.main_dead, np.asarray(main_rows, np.int64)) if main_rows else state.main_dead
    delta = state.delta
    gone = {delta.row_of[j] for j in ids if j in delta.row_of}
    if not gone and isinstance(op, _Delete):
        return _State(state.main, dead, delta)
    keep = np.setdiff1d(np.arange(delta.size), np.fromiter(gone, np.int64, len(gone)), assume_unique=True)
    parts_ids = [delta.job_ids[keep]]
    parts_emb = [delta.embeddings_host[keep]]
    parts_terms = [delta.job_terms[keep]]
    if isinstance(op, _Upsert):
        parts_ids.append(np.asarray(op.job_ids, dtype=object))
        parts_emb.append(op.embeddings)
        parts_terms.append(op.terms)
    width = max(t.shape[1] for t in parts_terms)
    terms = sp.vstack([_widen(t, width) for t in parts_terms], format="csr")
    new_delta = Segment.build(backend, np.concatenate(parts_ids), np.concatenate(parts_emb), terms, warm=scan)
    return _State(state.main, dead, new_delta)


def _widen(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    m = sp.csr_matrix(m)
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


def _merge(state: _State, backend: Backend, max_head: int, scan: Literal["fused", "matrix"]) -> Segment:
    """New main arrays: live main rows, then the delta."""
    main, delta = state.main, state.delta
    alive = np.setdiff1d(np.arange(main.size), state.main_dead, assume_unique=True)
    width = max(main.n_terms, delta.n_terms)
    terms = sp.vstack([_widen(main.job_terms[alive], width), _widen(delta.job_terms, width)], format="csr")
    return Segment.build(
        backend,
        np.concatenate([main.job_ids[alive], delta.job_ids]),
        np.concatenate([main.embeddings_host[alive], delta.embeddings_host]),
        terms,
        max_head=max_head,
        warm=scan,
    )


def _term_candidates(seg: Segment, weights: sp.csr_matrix, n_queries: int, n: int, fused: bool) -> np.ndarray:
    """Per query, the n jobs with the highest term score.

    The matrix path scores only the short (tail) posting lists: head terms (seniority,
    big cities) barely narrow a catalog, and they are scored in full when the
    candidates are rescored. The fused scan scores every term, without a
    (queries x catalog) matrix (at 1,024 queries and 1M jobs that is 4 GB)."""
    if fused:
        values, rows = seg.scan(n, query_embeddings=None, weights=weights, forbid=None, must_groups=[],
                                must_needed=np.zeros(n_queries, np.int64), dead_rows=None,
                                excluded=(np.zeros(0, np.int64), np.zeros(0, np.int64)))
        return rows[values > 0]
    xp = seg.backend.xp
    scores = xp.zeros((n_queries, seg.size), dtype=xp.float32)
    seg.add_term_scores(scores, weights)
    values, rows = (seg.backend.to_host(a) for a in topk(xp, scores, n))
    return rows[values > 0]


# ---- query compilation -----------------------------------------------------------


@dataclass
class _Compiled:
    embeddings_host: np.ndarray | None  # (q, d), already times dense_weight
    weights: sp.csr_matrix | None  # (q, vocab): term + link + penalty weights
    forbid: sp.csr_matrix | None
    must_groups: list[sp.csr_matrix]
    must_needed: np.ndarray  # (q,) groups each query must satisfy
    exclude: list[frozenset[str]]

    def score_args(self, seg: Segment, dead: np.ndarray | None, backend: Backend,
                   locate: Callable[[str], int | None] | None = None) -> dict[str, Any]:
        return dict(
            query_embeddings=None if self.embeddings_host is None else backend.asarray(self.embeddings_host),
            weights=self.weights,
            forbid=self.forbid,
            must_groups=self.must_groups,
            must_needed=self.must_needed,
            dead_rows=None if dead is None or not len(dead) else backend.asarray(dead),
            excluded=self.excluded_rows(locate or seg.row_of.get),
        )

    def excluded_rows(self, locate: Callable[[str], int | None]) -> tuple[np.ndarray, np.ndarray]:
        """(query index, row) of each excluded job that `locate` finds in the segment."""
        q_idx, rows = [], []
        for i, ids in enumerate(self.exclude):
            for j in ids:
                r = locate(j)
                if r is not None:
                    q_idx.append(i)
                    rows.append(r)
        return np.asarray(q_idx, np.int64), np.asarray(rows, np.int64)


def _unit(weights: Mapping[str, float], norm: float) -> dict[str, float]:
    """The weights divided by their length (`PackedTerms.norms`); none if all are zero."""
    return {t: w / norm for t, w in weights.items()} if norm > 0 else {}


def _term_matrix(per_query: list[Iterable[str]], vocab: Vocabulary) -> sp.csr_matrix:
    """(queries x vocabulary) CSR with a 1 for each of a query's terms: a mask, so a term
    given twice does no harm."""
    lengths = np.fromiter(map(len, per_query), np.int64, len(per_query))
    terms = list(chain.from_iterable(per_query))
    return _entries_csr(np.repeat(np.arange(len(per_query)), lengths), vocab.columns(terms),
                        np.ones(len(terms)), len(per_query), len(vocab))


def query_weights(queries: list[Query], config: IndexConfig, vocab: Vocabulary) -> sp.csr_matrix | None:
    """The one weighted term vector per query that goes through the inverted index: terms
    and links, each scaled to unit length and by its fusion weight, minus penalties. Built
    from the queries' packed arrays (`PackedTerms`). None when no query has any
    (dense-only queries: an empty CSR costs 0.1 ms to construct)."""
    packs = [q.packed for q in queries]
    lengths = np.array([p.lengths for p in packs], np.int64).reshape(-1, 3)
    if not lengths.any():
        return None
    norms = np.array([p.norms for p in packs], np.float64).reshape(-1, 2)
    fusion = np.array([config.term_weight, config.link_weight] if config.scoring != "dense" else [0.0, 0.0])
    scale = np.zeros((len(packs), 3))
    np.divide(fusion, norms, out=scale[:, :2], where=norms > 0)
    scale[:, 2] = -1.0  # penalties apply as given, under every scoring
    vals = np.concatenate([p.weights for p in packs]) * np.repeat(scale.ravel(), lengths.ravel())
    cols = vocab.columns_of_keys(np.concatenate([p.keys for p in packs]))
    return _entries_csr(np.repeat(np.arange(len(packs)), lengths.sum(axis=1)), cols, vals, len(packs), len(vocab))


def _entries_csr(q_idx: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_queries: int,
                 n_cols: int) -> sp.csr_matrix:
    """(queries x vocabulary) float32 CSR from (query, column, value) entries given in
    query order. A column given twice for a query is two entries, which every consumer
    sums (scipy's own meaning of a repeated CSR entry). Columns the vocabulary does not
    know (-1) match no job and are dropped, zero values too. Built from its arrays as it
    comes, neither through COO nor made canonical (rows sorted, repeats summed): no scan
    needs that (the filters sort what they merge, `Filters.build`), and each is a pass
    over every entry of the batch on the host, in the hybrid's critical path on a GPU."""
    keep = (cols >= 0) & (vals != 0)
    q_idx, cols, vals = q_idx[keep], cols[keep], vals[keep]
    indptr = np.zeros(n_queries + 1, np.int64)
    np.cumsum(np.bincount(q_idx, minlength=n_queries), out=indptr[1:])
    return sp.csr_matrix((vals.astype(np.float32), cols, indptr), shape=(n_queries, n_cols))


def _query_embeddings(queries: list[Query], dim: int) -> np.ndarray:
    """(queries, dim) float32; zeros for a query without an embedding."""
    given = [q.embedding for q in queries]
    if all(e is not None for e in given):
        try:  # one conversion for the batch: 1,000 row copies cost 5 ms
            emb = np.array(given, dtype=np.float32)
        except ValueError:  # ragged: fall through to the row-by-row check and its message
            emb = None
        if emb is not None and emb.shape == (len(queries), dim):
            return emb
    emb = np.zeros((len(queries), dim), np.float32)
    for i, e in enumerate(given):
        if e is not None:
            e = np.asarray(e, np.float32).reshape(-1)
            if e.shape != (dim,):
                raise ValueError(f"query {i} embedding has shape {e.shape}, expected ({dim},)")
            emb[i] = e
    return emb


def _compile(queries: list[Query], vocab: Vocabulary, config: IndexConfig) -> _Compiled:
    emb = None
    if config.scoring != "term":
        emb = _query_embeddings(queries, config.dim)
        if config.dense_weight != 1.0:
            emb *= config.dense_weight
    weights = query_weights(queries, config, vocab)
    forbid = None
    if any(q.forbid for q in queries):
        forbid = _term_matrix([q.forbid for q in queries], vocab)
    n_groups = max((len(q.must) for q in queries), default=0)
    groups = [_term_matrix([q.must[g] if g < len(q.must) else () for q in queries], vocab)
              for g in range(n_groups)]
    needed = np.asarray([len(q.must) for q in queries], np.int64)
    return _Compiled(emb, _nonempty(weights), _nonempty(forbid), groups, needed, [q.exclude_ids for q in queries])


def _nonempty(m: sp.csr_matrix | None) -> sp.csr_matrix | None:
    """None for a matrix without entries (every term unknown, or none given)."""
    return m if m is not None and m.nnz else None


# ---- explanations ----------------------------------------------------------------


def _explain(queries: list[Query], located: tuple, scores: np.ndarray,
             vocab: Vocabulary, config: IndexConfig) -> list[list[Reason]]:
    segments, seg_no, rows = located
    out = []
    for i, q in enumerate(queries):
        terms = _unit(q.terms, q.packed.norms[0]) if config.scoring != "dense" else {}
        links = _unit(q.links, q.packed.norms[1]) if config.scoring != "dense" else {}
        reasons = []
        for j in range(scores.shape[1]):
            if scores[i, j] == NEG_INF:
                break
            seg, r = segments[seg_no[i, j]][0], int(rows[i, j])
            row = seg.job_terms[r]
            job_t = {vocab.term(c) for c in row.indices}
            matched = tuple(t for t in terms if t in job_t)
            matched_links = tuple((src, t, w) for t in links if t in job_t for src, w in q.link_sources.get(t, ()))
            sim = 0.0
            if q.embedding is not None and config.scoring != "term":
                sim = float(np.dot(np.asarray(q.embedding, np.float32), seg.embeddings_host[r]))
            reasons.append(Reason(
                score=float(scores[i, j]),
                similarity=sim,
                term_score=sum(terms[t] for t in matched),
                link_score=sum(links[t] for t in links if t in job_t),
                penalty=sum(p for t, p in q.penalties.items() if t in job_t),
                matched_terms=matched,
                matched_links=matched_links,
            ))
        out.append(reasons)
    return out
