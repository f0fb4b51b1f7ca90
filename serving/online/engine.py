"""The scoring path, in process: fold events into state, answer score requests.

    engine = MatchingEngine(make_scorer("bm25"))
    for event in events:                       # from Kafka (the scoring worker) or a log (replay)
        engine.apply(event)
    result = engine.score(ScoreRequest(request_id="r1", member_id="m1", k=10), now=t)

One engine serves both the online worker and replay, so they cannot drift. It folds
events with the same pure functions the stream worker uses: member states with
`streams.state.apply_member_event`, the job catalog with `streams.state.apply_job_event`
(the rule of the `jobs` agent), the job index's upsert/delete, learned links from
hires and applies, and feedback rules from the dismisses in a member's history.

The dense column's embedder is the index's hashed-term one unless one is given; the
PLM4Job encoder (`EgoGraphEmbedder`) embeds each node with its ego graph, and the
engine keeps that graph current from the same events (`serving.graph_data`).

Several retrieval settings can share one engine (`retrievals={"hybrid": "hybrid,exact",
"term": "term,exact"}`): each gets its own index fed by the same events, so a
side-by-side replay folds the log once.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from index import HashedTermEmbedder, JobIndex, LinkGraph
from serving.online.catalog import JobCounters
from serving.graph_data import apply_graph_event
from streams.state import CatalogEntry, apply_job_event
from serving.online.results import score_result
from serving.online.retrieval import surface_query
from serving.online.scoring import ranked_items
from serving.online.scorer import Candidate, Scorer
from streams.schemas import (
    ActionType,
    CompanyUpserted,
    HireConfirmed,
    Job,
    JobClosedEvent,
    JobPosted,
    JobUpdated,
    MemberActed,
    MemberProfile,
    MemberUpserted,
    ScoreRequest,
    ScoreResult,
    ScoreStatus,
    Surface,
    utc,
)
from streams.state import MemberState, apply_member_event
from streams.topics import MEMBER_ACTIONS_RETENTION_DAYS


@dataclass(frozen=True)
class EngineConfig:
    retrieve_k: int = 100  # candidates retrieved per request, then ranked
    dim: int = 64  # embedding width of the default (hashed-term) embedder
    use_links: bool = True  # expand member attributes through the learned links
    use_rules: bool = True  # apply the member's dismiss-feedback rules
    link_min_support: int = 2
    # Applies teach links for this long (event time), hires for ever: the retention of
    # member-actions (streams.topics), which is all of them a restarted replica can
    # read, so that every replica holds the same links whenever it started.
    link_apply_window_days: float | None = MEMBER_ACTIONS_RETENTION_DAYS
    history_max_items: int = 30  # as the stream worker's settings
    seen_window: int = 256
    dedupe_window: int = 200_000  # recent ids of non-member events, for redelivery
    # Jobs arrive one at a time; the index rebuilds its delta on every write, so a
    # small delta folded into the main arrays often keeps a write O(delta), not O(n).
    index_delta_limit: int = 64


DEFAULT_RETRIEVALS: Mapping[str, str] = {"hybrid": "hybrid,exact"}


def load_encoder(path: str | None):
    """The PLM4Job checkpoint at `path` as the indexes' embedder; None keeps hashed terms."""
    if not path:
        return None
    from models.ego_embedder import EgoGraphEmbedder

    return EgoGraphEmbedder.from_pretrained(path)


class MatchingEngine:
    def __init__(
        self,
        scorer: Scorer | None = None,
        config: EngineConfig | None = None,
        *,
        retrievals: Mapping[str, str] | None = None,
        embedder: Any = None,
        keep_members: bool = True,
        model_id: str | None = None,
    ):
        self.config = config or EngineConfig()
        self.scorer = scorer
        self.model_id = model_id or (scorer.name if scorer is not None else "retrieval")
        self.embedder = embedder or HashedTermEmbedder(self.config.dim)
        specs = dict(retrievals or DEFAULT_RETRIEVALS)
        if not specs:
            raise ValueError("an engine needs at least one retrieval setting")
        self.indexes: dict[str, JobIndex] = {
            name: JobIndex.create(spec, embedder=self.embedder, dim=self.embedder.dim,
                                   delta_limit=self.config.index_delta_limit)
            for name, spec in specs.items()
        }
        self.default_retrieval = next(iter(self.indexes))
        self.catalog: dict[str, CatalogEntry] = {}
        self.counters = JobCounters()
        self.profiles: dict[str, MemberProfile] = {}
        window = self.config.link_apply_window_days
        self.links = LinkGraph(min_support=self.config.link_min_support,
                               apply_window_s=None if window is None else window * 86400.0)
        self.members: dict[str, MemberState] | None = {} if keep_members else None
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self._index_ops: list[tuple[str, Any]] = []  # job writes not yet in the indexes
        self._lock = threading.RLock()  # the replica thread writes while requests read
        self.applied = 0
        self.last_event_time = 0.0

    # ---- folding events ----------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        """The job as last posted/updated, open or closed (histories name closed jobs)."""
        entry = self.catalog.get(job_id)
        return entry.job if entry is not None else None

    def is_open(self, job_id: str) -> bool:
        entry = self.catalog.get(job_id)
        return bool(entry and entry.open and entry.job is not None)

    def member(self, member_id: str) -> MemberState | None:
        return self.members.get(member_id) if self.members is not None else None

    def apply(self, event: Any) -> bool:
        """Fold one event; False when it changed nothing (a redelivery, or an old job event)."""
        with self._lock:
            changed = self._apply(event)
            if changed:
                self.applied += 1
                self.last_event_time = max(self.last_event_time, event.event_time.timestamp())
                graph = getattr(self.embedder, "graph", None)  # an ego-graph encoder's live graph
                if graph is not None:
                    apply_graph_event(graph, event)
            return changed

    def apply_all(self, events: Iterable[Any]) -> int:
        return sum(self.apply(e) for e in events)

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            return False
        self._recent_ids[event_id] = None
        if len(self._recent_ids) > self.config.dedupe_window:
            self._recent_ids.popitem(last=False)
        return True

    def _apply(self, event: Any) -> bool:
        if isinstance(event, (JobPosted, JobUpdated, JobClosedEvent)):
            return self._apply_job(event)
        if isinstance(event, (MemberUpserted, MemberActed, HireConfirmed)):
            if self.members is not None:
                mid = event.payload.member_id
                before = self.members.get(mid)
                after = apply_member_event(before, event, self.job, max_items=self.config.history_max_items,
                                           seen_window=self.config.seen_window)
                if after is before:
                    return False
                self.members[mid] = after
            elif not self._first_time(event.event_id):
                return False
            if isinstance(event, MemberUpserted):
                self.profiles[event.payload.member_id] = event.payload
            elif isinstance(event, MemberActed):
                self.counters.add(event)
                if event.payload.action is ActionType.APPLY:
                    self._learn_link(event)
            else:
                self._learn_link(event)
            return True
        if isinstance(event, CompanyUpserted):
            return self._first_time(event.event_id)
        return False  # score requests/results carry no state

    def _apply_job(self, event: JobPosted | JobUpdated | JobClosedEvent) -> bool:
        job_id = event.payload.job_id
        before = self.catalog.get(job_id)
        after = apply_job_event(before, event)
        if after is before:
            return False
        self.catalog[job_id] = after
        if after.open:
            self._index_ops.append(("upsert", after.job))
        elif before is not None and before.open:
            self._index_ops.append(("delete", job_id))
        return True

    def put_catalog_entry(self, job_id: str, entry: CatalogEntry) -> bool:
        """Take a catalog entry as the stream worker stored it (its `job-catalog`
        changelog, which a serving replica bootstraps from): the worker has already
        applied `apply_job_event`'s ordering rules, so the entry replaces ours as is."""
        with self._lock:
            before = self.catalog.get(job_id)
            if before == entry:
                return False
            self.catalog[job_id] = entry
            if entry.open and entry.job is not None:
                self._index_ops.append(("upsert", entry.job))
            elif before is not None and before.open:
                self._index_ops.append(("delete", job_id))
            self.applied += 1
            self.last_event_time = max(self.last_event_time, entry.event_time)
            graph = getattr(self.embedder, "graph", None)
            if graph is not None and entry.job is not None:
                apply_graph_event(graph, JobUpdated(event_id=entry.event_id, event_time=utc(entry.event_time),
                                                    payload=entry.job))
            return True

    def _flush_index(self) -> None:
        """Apply the job writes queued since the last read, in order, in batches.

        Jobs are written lazily because one index write costs milliseconds whatever its
        size: a burst of postings becomes one upsert. Every read flushes first, so a
        search still sees exactly the jobs folded before it."""
        ops, self._index_ops = self._index_ops, []
        for kind, run in itertools.groupby(ops, key=lambda op: op[0]):
            batch = [x for _, x in run]
            for index in self.indexes.values():
                index.upsert(batch) if kind == "upsert" else index.delete(batch)

    def _learn_link(self, event: HireConfirmed | MemberActed) -> None:
        """A hire or an apply is one observation for the learned links (index.links)."""
        profile = self.profiles.get(event.payload.member_id)
        job = self.job(event.payload.job_id)
        if profile is not None and job is not None:
            if isinstance(event, HireConfirmed):
                self.links.add_hire(profile, job)
            else:
                self.links.add_apply(profile, job, at=event.event_time.timestamp())

    # ---- answering ---------------------------------------------------------------

    def candidates(self, job_ids: Sequence[str]) -> list[Candidate]:
        """Known jobs as candidates, with what is known of them now (shown slates)."""
        out = []
        for j in job_ids:
            job = self.job(j)
            if job is not None:
                out.append(Candidate(job, 0.0, dict(self.counters.of(j))))
        return out

    def retrieve(self, state: MemberState, surface: Surface | str = Surface.RECOMMENDATIONS,
                 query: str | None = None, k: int | None = None, retrieval: str | None = None,
                 explain: bool = False) -> tuple[list[Candidate], list[list[str]]]:
        """Candidates for a member on a surface from one retrieval setting's index, and
        (when `explain`) each one's reasons."""
        k = k or self.config.retrieve_k
        name = retrieval or self.default_retrieval
        try:
            index = self.indexes[name]
        except KeyError:
            raise ValueError(f"unknown retrieval {name!r}; this engine has {sorted(self.indexes)}") from None
        with self._lock:
            self._flush_index()
            if state.profile is None:
                return self._popular_open(surface, k), []
            q = surface_query(state, surface, self.job, embedder=index.embedder,
                              links=self.links if self.config.use_links else None,
                              query=query, use_rules=self.config.use_rules)
            found = index.search([q], k=k)
            hits = found.hits(0)
            cands = [Candidate(self.job(j), s, dict(self.counters.of(j))) for j, s in hits
                     if self.job(j) is not None]
        reasons = [r.as_strings() for r in found.reasons[0][: len(hits)]] if explain else []
        return cands, reasons

    def _popular_open(self, surface: Surface | str, k: int) -> list[Candidate]:
        """Without a profile there is nothing to match: the most engaged-with open jobs."""
        promoted = Surface(surface) is Surface.PROMOTED
        ids = [j for j, e in self.catalog.items() if e.open and e.job is not None
               and (e.job.promoted or not promoted)]
        ids.sort(key=lambda j: (-self.counters.popularity(j), j))
        return self.candidates(ids[:k])

    def score(self, request: ScoreRequest, now: float, member_state: MemberState | None = None,
              scorer: Scorer | None = None, retrieval: str | None = None, explain: bool = True) -> ScoreResult:
        """Retrieve, rank, cut to k: a ScoreResult with reasons and timings (ms), in the
        caller's thread and without deadlines or a queue (tests, scripts). Live requests
        go through `serving.online.scoring.ScoringService`, which adds those around the same
        retrieval and the same cut."""
        t0 = time.perf_counter()
        scorer = scorer or self.scorer
        state = member_state or self.member(request.member_id) or MemberState(member_id=request.member_id)
        try:
            cands, reasons = self.retrieve(state, request.surface, request.query, retrieval=retrieval,
                                           explain=explain)
            t1 = time.perf_counter()
            scores = (scorer.score(state, cands, request.task, now, request.query) if scorer is not None
                      else np.asarray([c.retrieval_score for c in cands], dtype=np.float64))
        except (ValueError, RuntimeError) as err:
            return score_result(request.request_id, request.member_id, model_id=self.model_id,
                                error=f"{type(err).__name__}: {err}", status=ScoreStatus.ERROR)
        t2 = time.perf_counter()
        return score_result(
            request.request_id, request.member_id, items=ranked_items(cands, reasons, scores, request.k),
            model_id=scorer.name if scorer is not None else self.model_id,
            timings_ms={"retrieve": (t1 - t0) * 1e3, "rank": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3,
                        "candidates": float(len(cands))},
        )

