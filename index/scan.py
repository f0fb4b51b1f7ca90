"""Exact top-k without writing the (queries x catalog) score matrix: the CPU scan.

On a GPU the array-module path (`Segment.score` then `topk`) is the right shape: it
writes every score once and memory bandwidth is plentiful. On a CPU that matrix is
the cost: at 1M jobs, 64 queries write 256 MB that `topk` then reads several times,
and the whole search ran at 2.6x faiss's flat index (issue 3's note). faiss avoids it
by scoring the catalog in blocks that stay in cache and keeping a heap per query;
this module does the same, with the index's own scoring rules. Per block of jobs:

1. one BLAS product: embeddings and head-term columns, as in `Segment.dense_scores`;
2. one compiled pass per query: add the weights of the query's tail terms from the
   block's own posting lists (`BlockPostings`: every term's list cut at block bounds
   and stored block by block, so a block's lists sit together in cache; a walk of the
   catalog-wide lists jumped between ~35 lists per query per block and cost 14 ns a
   posting), then keep only scores above the query's running k-th best; after the
   first blocks almost nothing passes;
3. a job that passes is checked against the query's filters (closed, excluded, forbid
   and must terms) through its own sorted term list, so masks cost nothing for the
   jobs that could never make the top k.

The result is the same set as a full sort (ties at the k-th score may be broken either
way, as in `topk`). Queries are split across threads, each running its own products
single-threaded: BLAS's own threads, spinning between products, made it 20% slower.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
import scipy.sparse as sp
from numba import njit
from threadpoolctl import ThreadpoolController

BLOCK_ROWS = 2048  # jobs per block: a thread's (queries x block) scores stay in L3 from product to scan,
# the block's posting lists (~60 KB at 15 terms a job) in L2. At 1M jobs 1,024 slowed the term
# walk (more lists to open) and 4,096 the scan (scores fell out of cache)
SMALL_BATCH_SCORES = 1 << 22  # a thread's queries x jobs up to this: one product, not one per block
BUFFER = 256  # per query: candidates held before they are cut back to the best k (or 2k). A cut
# raises the threshold, and while it is low most chunks need a second look: at 100k jobs,
# d=128, a 2,048 buffer cut once per query and the scan cost 0.082 s a thread, 256 0.069 s


@dataclass(frozen=True)
class Filters:
    """Per query, what drops a job, as CSR-style (indptr, values) pairs of int64 arrays.

    forbid: sorted term ids; must: per query a run of groups (group_ptr), per group
    sorted term ids (group_terms); excluded: sorted row numbers; dead: bool per row."""

    forbid_ptr: np.ndarray
    forbid: np.ndarray
    group_ptr: np.ndarray  # query i's groups are group_ptr[i]:group_ptr[i+1] in group_terms_ptr
    group_terms_ptr: np.ndarray
    group_terms: np.ndarray
    excluded_ptr: np.ndarray
    excluded: np.ndarray
    dead: np.ndarray  # (n,) bool, or (0,) when no row is closed

    def unfiltered(self) -> np.ndarray:
        """Per query: True where no filter can drop a job."""
        return ~((len(self.dead) > 0) | (np.diff(self.excluded_ptr) > 0) | (np.diff(self.forbid_ptr) > 0)
                 | (np.diff(self.group_ptr) > 0))

    @classmethod
    def build(cls, n_rows: int, forbid: sp.csr_matrix | None, must_groups: list[sp.csr_matrix],
              must_needed: np.ndarray, excluded: tuple[np.ndarray, np.ndarray], dead_rows: np.ndarray | None
              ) -> "Filters":
        n_q = len(must_needed)
        forbid_ptr, forbid_terms, _ = _csr_arrays(None if forbid is None else forbid.sorted_indices(), n_q)
        # group g of query i, for the groups query i has (must_needed[i] of them)
        group_ptr = np.zeros(n_q + 1, np.int64)
        group_ptr[1:] = np.cumsum(must_needed)
        runs = [g.sorted_indices() for g in must_groups]
        terms_per_group, terms = [], []
        for i in range(n_q):
            for g in range(int(must_needed[i])):
                row = runs[g].indices[runs[g].indptr[i]: runs[g].indptr[i + 1]]
                terms_per_group.append(len(row))
                terms.append(row)
        group_terms_ptr = np.zeros(len(terms_per_group) + 1, np.int64)
        group_terms_ptr[1:] = np.cumsum(terms_per_group)
        q_idx, rows = excluded
        order = np.lexsort((rows, q_idx))
        excluded_ptr = np.zeros(n_q + 1, np.int64)
        excluded_ptr[1:] = np.cumsum(np.bincount(q_idx, minlength=n_q))
        dead = np.zeros(0, np.bool_)
        if dead_rows is not None and len(dead_rows):
            dead = np.zeros(n_rows, np.bool_)
            dead[dead_rows] = True
        return cls(
            forbid_ptr=forbid_ptr, forbid=forbid_terms,
            group_ptr=group_ptr, group_terms_ptr=group_terms_ptr,
            group_terms=np.concatenate(terms).astype(np.int64) if terms else np.zeros(0, np.int64),
            excluded_ptr=excluded_ptr, excluded=np.asarray(rows, np.int64)[order], dead=dead,
        )


@dataclass(frozen=True)
class BlockPostings:
    """Posting lists cut at block bounds: block b's list of term t is
    jobs[ptr[b, t]:ptr[b, t + 1]], as rows relative to the block's first job."""

    ptr: np.ndarray  # (blocks, n_terms + 1) int64
    jobs: np.ndarray  # uint16 (a block has at most 65,536 rows)
    block_rows: int

    @classmethod
    def build(cls, job_terms: sp.csr_matrix, block_rows: int | None = None) -> "BlockPostings":
        """job_terms: (n, n_terms) job-major CSR of the terms to score by posting lists."""
        block_rows = block_rows or BLOCK_ROWS
        if block_rows > 1 << 16:
            raise ValueError(f"block_rows {block_rows} does not fit uint16 row offsets")
        n, n_terms = job_terms.shape
        ptrs, jobs, offset = [], [], 0
        for lo in range(0, max(n, 1), block_rows):
            block = sp.csr_matrix(job_terms[lo: lo + block_rows]).T.tocsr()  # (n_terms, rows) term-major
            block.sort_indices()
            ptrs.append(block.indptr.astype(np.int64) + offset)
            jobs.append(block.indices.astype(np.uint16))
            offset += block.nnz
        return cls(np.stack(ptrs), np.concatenate(jobs), block_rows)


def _csr_arrays(m: sp.csr_matrix | None, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices as int64, data as float32) of a CSR matrix; empty rows for None
    (building an empty scipy matrix instead took 0.1 ms, several times a query)."""
    if m is None:
        return np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float32)


def scan_topk(query_matrix: np.ndarray | None, vectors: np.ndarray | None, term_weights: sp.csr_matrix | None,
              postings: BlockPostings, job_terms: sp.csr_matrix, filters: Filters, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(values, rows), each (queries, k), best first; -inf (row 0) where fewer qualify.

    The score of job j for query i is (query_matrix @ vectors.T)[i, j] (omitted: 0) plus
    the sum of term_weights[i, t] over the terms t whose posting list holds j."""
    n_q, n = len(filters.forbid_ptr) - 1, job_terms.shape[0]
    k = min(k, n)
    width = postings.ptr.shape[1] - 1
    if term_weights is not None and term_weights.shape[1] > width:
        raise ValueError(f"term weights have {term_weights.shape[1]} columns, the postings {width} terms")
    w_ptr, w_terms, w_vals = _csr_arrays(term_weights, n_q)
    scan = _Scan(
        query_matrix=query_matrix, vectors=vectors, n=n, k=k, filters=filters, postings=postings,
        w_ptr=w_ptr, w_terms=w_terms, w_vals=w_vals,
        jt_ptr=job_terms.indptr, jt_terms=job_terms.indices,  # as stored: a copy per search cost 30 ms at 1M
        threshold=np.full(n_q, -np.inf, np.float32),
        buf_vals=np.empty((n_q, max(BUFFER, 2 * k) + CHUNK), np.float32),  # + a chunk: a look never overflows
        buf_rows=np.empty((n_q, max(BUFFER, 2 * k) + CHUNK), np.int64),
        held=np.zeros(n_q, np.int64),
        unfiltered=filters.unfiltered(),
    )
    values = np.full((n_q, k), -np.inf, np.float32)
    rows = np.zeros((n_q, k), np.int64)
    parts = _query_parts(n_q)
    with _one_blas_thread():  # also for one part: BLAS threads left spinning slow whatever runs next
        if len(parts) == 1:
            scan.run(*parts[0], values, rows)
        else:
            for done in [_pool().submit(scan.run, q0, q1, values, rows) for q0, q1 in parts]:
                done.result()
    return values, rows


@dataclass
class _Scan:
    """One batch's scan state; `run(q0, q1, ...)` scans the catalog for queries q0..q1-1
    and touches only their rows, so threads can run disjoint ranges."""

    query_matrix: np.ndarray | None
    vectors: np.ndarray | None
    n: int
    k: int
    filters: Filters
    postings: BlockPostings
    w_ptr: np.ndarray
    w_terms: np.ndarray
    w_vals: np.ndarray
    jt_ptr: np.ndarray
    jt_terms: np.ndarray
    threshold: np.ndarray
    buf_vals: np.ndarray
    buf_rows: np.ndarray
    held: np.ndarray
    unfiltered: np.ndarray  # per query: no filter can drop a job (no closed rows, exclusions, forbid or must terms)

    def run(self, q0: int, q1: int, values: np.ndarray, rows: np.ndarray) -> None:
        """Scan, then write the queries' k best into values/rows[q0:q1], best first
        (the final cut and sort run here too, in each thread: single-threaded after the
        scan they cost 13 ms of a 0.26 s batch at 100k jobs)."""
        f, b_rows = self.filters, self.postings.block_rows
        block = np.empty((q1 - q0, min(b_rows, self.n)), np.float32)
        whole = None
        if self.query_matrix is not None and (q1 - q0) * self.n <= SMALL_BATCH_SCORES:
            # a few queries: one product over the whole catalog, not a call per block (49 at
            # 100k jobs, each for a row or a few)
            whole = _small_product(self.query_matrix[q0:q1], self.vectors)
        for b, lo in enumerate(range(0, self.n, b_rows)):
            hi = min(lo + b_rows, self.n)
            scores = self._block_scores(q0, q1, lo, hi, block, whole)
            w_ptr = self.w_ptr
            if b == 0 and hi - lo >= self.k:
                _add_terms(scores, q0, q1, self.w_ptr, self.w_terms, self.w_vals, self.postings.ptr[b],
                           self.postings.jobs)
                self._start_thresholds(scores, q0, q1)
                w_ptr = np.zeros_like(self.w_ptr)  # added: the scan adds none
            _scan_block(scores, lo, q0, q1, w_ptr, self.w_terms, self.w_vals, self.postings.ptr[b],
                        self.postings.jobs, f.forbid_ptr, f.forbid, f.group_ptr, f.group_terms_ptr,
                        f.group_terms, f.excluded_ptr, f.excluded, f.dead, self.jt_ptr, self.jt_terms,
                        self.threshold, self.buf_vals, self.buf_rows, self.held, self.unfiltered, self.k)
        _finish(q0, q1, self.buf_vals, self.buf_rows, self.held, self.k, values, rows)
        order = np.argsort(-values[q0:q1], axis=1, kind="stable")  # NumPy's sort lets the GIL go
        values[q0:q1] = np.take_along_axis(values[q0:q1], order, axis=1)
        rows[q0:q1] = np.take_along_axis(rows[q0:q1], order, axis=1)

    def _block_scores(self, q0: int, q1: int, lo: int, hi: int, block: np.ndarray,
                      whole: np.ndarray | None) -> np.ndarray:
        """The queries' product scores for jobs lo..hi-1, C-contiguous: a column slice is
        not, and would compile (seconds) and run a second, slower kernel."""
        if whole is not None:
            return np.ascontiguousarray(whole[:, lo:hi])  # a single query's slice needs no copy
        scores = block if hi - lo == block.shape[1] else np.empty((q1 - q0, hi - lo), np.float32)
        if self.query_matrix is None:
            scores[:] = 0
        else:
            np.matmul(self.query_matrix[q0:q1], self.vectors[lo:hi].T, out=scores)
        return scores

    def _start_thresholds(self, scores: np.ndarray, q0: int, q1: int) -> None:
        """A first block's k-th best is a floor for the k-th best overall, for a query
        whose filters drop nothing: start just below it rather than buffering the block.
        NumPy's partition, for all the thread's queries at once: 3 ms for 500 queries of a
        2,048-job block, where a compiled quickselect per query took 12 ms."""
        width = scores.shape[1]
        kth = np.partition(scores, width - self.k, axis=1)[:, width - self.k]
        start = self.unfiltered[q0:q1]
        self.threshold[q0:q1][start] = np.nextafter(kth[start], np.float32(-np.inf))


def _small_product(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """queries @ vectors.T for a few queries. One query is a matrix-vector product, bound
    by reading the catalog: it runs in row ranges on the scan's threads (BLAS is held to
    one). bench/retrieval.py, 100k jobs, d=64, 2 cores, single queries timed in turns with
    faiss (its protocol then): p50 5.35 ms on one thread (1.61x faiss flat), 4.25 ms split
    (1.33x)."""
    if len(queries) > 1:
        return queries @ vectors.T
    # one query is always scanned on the caller's thread (_query_parts), so waiting on
    # the pool here cannot starve it
    out = np.empty(len(vectors), np.float32)
    cuts = np.linspace(0, len(vectors), _threads() + 1).astype(np.int64)
    parts = [_pool().submit(np.matmul, vectors[lo:hi], queries[0], out=out[lo:hi])
             for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]
    for part in parts:
        part.result()
    return out[None, :]


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS single-threaded while our threads run products side by side. The limit is
    process-wide: a search running meanwhile in another thread gets slower, not wrong."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="index-scan")


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _query_parts(n_q: int) -> list[tuple[int, int]]:
    parts = min(_threads(), max(1, n_q // 16))  # a thread per 16+ queries; one query stays on this thread
    return [(p * n_q // parts, (p + 1) * n_q // parts) for p in range(parts)]


# ---- compiled kernels --------------------------------------------------------------
# Index arithmetic only; `range(len(view))` loops (not range(lo, hi)) let LLVM prove the
# indices non-negative and vectorize the threshold count, which is most of the work.

CHUNK = 256  # scores tested together: one vectorized count, then a look only where it is > 0


@njit(nogil=True, cache=True)
def _scan_block(scores, lo, q0, q1, w_ptr, w_terms, w_vals, b_ptr, b_jobs, forbid_ptr, forbid, group_ptr,
                group_terms_ptr, group_terms, excluded_ptr, excluded, dead, jt_ptr, jt_terms,
                threshold, buf_vals, buf_rows, held, unfiltered, k):
    """Scores rows q0..q1-1 of `scores` (queries q0.., jobs lo..) into the running top-k."""
    width = scores.shape[1]
    for i in range(q0, q1):
        row = scores[i - q0]
        _add_row_terms(row, i, w_ptr, w_terms, w_vals, b_ptr, b_jobs)
        t = threshold[i]
        checked = not unfiltered[i]
        vals_i, rows_i = buf_vals[i], buf_rows[i]
        n = held[i]
        for c0 in range(0, width, CHUNK):
            chunk = row[c0: c0 + CHUNK]
            above = 0
            for j in range(len(chunk)):
                if chunk[j] > t:
                    above += 1
            if above == 0:
                continue
            if n + len(chunk) > len(vals_i):
                t = _cut_to_k(vals_i, rows_i, n, k)
                n = k
            if not checked:
                for j in range(len(chunk)):
                    v = chunk[j]
                    if v > t:
                        vals_i[n] = v
                        rows_i[n] = lo + c0 + j
                        n += 1
                        above -= 1
                        if above == 0:  # the count said how many: the rest of the chunk holds none
                            break
                continue
            for j in range(len(chunk)):
                v = chunk[j]
                if v <= t:
                    continue
                job = lo + c0 + j
                # the query's filters, through the job's sorted term run
                if len(dead) and dead[job]:
                    continue
                dropped = False
                for x in range(excluded_ptr[i], excluded_ptr[i + 1]):  # a handful of ids
                    dropped |= excluded[x] == job
                t0, t1 = jt_ptr[job], jt_ptr[job + 1]
                a, b = t0, forbid_ptr[i]
                while not dropped and a < t1 and b < forbid_ptr[i + 1]:  # a merge walk: a shared term?
                    dropped = jt_terms[a] == forbid[b]
                    if jt_terms[a] < forbid[b]:
                        a += 1
                    else:
                        b += 1
                for g in range(group_ptr[i], group_ptr[i + 1]):
                    a, b, met = t0, group_terms_ptr[g], False
                    while not met and a < t1 and b < group_terms_ptr[g + 1]:
                        met = jt_terms[a] == group_terms[b]
                        if jt_terms[a] < group_terms[b]:
                            a += 1
                        else:
                            b += 1
                    dropped |= not met
                if dropped:
                    continue
                vals_i[n] = v
                rows_i[n] = job
                n += 1
        held[i] = n
        threshold[i] = t


@njit(nogil=True, cache=True)
def _add_row_terms(row, i, w_ptr, w_terms, w_vals, b_ptr, b_jobs):
    """Add query i's term weights to its block of scores, through the block's posting lists."""
    for e in range(w_ptr[i], w_ptr[i + 1]):  # the query's (term, weight) entries
        w = w_vals[e]
        for p in range(b_ptr[w_terms[e]], b_ptr[w_terms[e] + 1]):
            row[b_jobs[p]] += w


@njit(nogil=True, cache=True)
def _add_terms(scores, q0, q1, w_ptr, w_terms, w_vals, b_ptr, b_jobs):
    for i in range(q0, q1):
        _add_row_terms(scores[i - q0], i, w_ptr, w_terms, w_vals, b_ptr, b_jobs)


@njit(nogil=True, cache=True)
def _cut_to_k(vals, rows, n, k):
    """Keep exactly the k best of vals[:n] at the front; return the k-th best.

    Later scores must beat it strictly: a tie with the k-th may be dropped, as a full
    sort may place it either side of the cut."""
    kth = _kth_largest(vals[:n].copy(), k)
    keep_vals = np.empty(k, vals.dtype)
    keep_rows = np.empty(k, rows.dtype)
    m = 0
    for x in range(n):
        if vals[x] > kth:
            keep_vals[m] = vals[x]
            keep_rows[m] = rows[x]
            m += 1
    for x in range(n):
        if m == k:
            break
        if vals[x] == kth:
            keep_vals[m] = vals[x]
            keep_rows[m] = rows[x]
            m += 1
    vals[:k] = keep_vals
    rows[:k] = keep_rows
    return kth


@njit(nogil=True, cache=True)
def _kth_largest(a, k):
    """The k-th largest of a (reordered in place): quickselect. Hand-written because
    numba's np.partition took 8 s to compile, in every fresh process without a cache."""
    lo, hi, want = 0, len(a) - 1, k - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:  # Hoare partition, descending: a[lo..j] >= pivot >= a[i..hi]
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            return a[want]
    return a[want]


@njit(nogil=True, cache=True)
def _finish(q0, q1, buf_vals, buf_rows, held, k, values, rows):
    """Queries q0..q1-1: their k best, unordered, into values/rows (`run` sorts them)."""
    for i in range(q0, q1):
        n = held[i]
        if n > k:
            _cut_to_k(buf_vals[i], buf_rows[i], n, k)
            n = k
        values[i, :n] = buf_vals[i, :n]
        rows[i, :n] = buf_rows[i, :n]
