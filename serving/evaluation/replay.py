"""Replay evaluation: a recorded log, in event-time order, through the scoring path.

    variants = [Variant("bm25", BM25Scorer()), Variant("popularity", PopularityScorer())]
    result = replay(read_log("day.jsonl"), variants)
    write_report(result, "artifacts/replay")          # report.md, metrics.json, report.json, *.png

Two passes over the log. The first only reads the future: what each member did to
each job afterwards (labels) and where the evaluation points are. The second folds
every event into one `MatchingEngine` in log order, and at each evaluation point,
*before* the event that marks it is folded, asks every variant to score with the
engine's state as it is at that instant. Labels come from the future; features never
do: histories, job counters, the index, learned links and feedback rules hold
exactly the events that precede the point (no leakage).

Evaluation points are the moments the log says something happened to a member:
  served   a slate (`serving.slates`, the labelling training uses too): a member's
           views on one surface with no gap over `slate_gap_s`, scored at its first view. Its
           candidates are the shown jobs where the log's views are impressions, the jobs open
           at that moment where they are a job board's page views (`slates`: the report says
           which); each scorer re-ranks them (AUC, NDCG@10, MRR per task); in a sampled share of slates the
           whole engine also runs (retrieve -> rank -> top k): recall of retrieval,
           apply and hire rate in the top k, coverage, diversity, dismissed-reshown.
  applied  the hire task: the applied job scored for "hire", labelled by a later hire.
  requested  an explicit `score.requested` event in the log (engine path only).
Dismisses and hires enter as labels (dismiss rate, hire rate) and as state (rules, links).

Determinism: the same log, seed and models give byte-identical `metrics.json`
(latencies are wall-clock, so they live in `report.json` only).
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from serving.evaluation import metrics as M
from serving.online.engine import EngineConfig, MatchingEngine, load_encoder
from serving.evaluation.eventlog import LogOrderError, LogRecord, ReadReport, as_records, read_log
from serving.online.scorer import Candidate, Scorer
from serving.online.scoring import top_k_order
from serving.slates import (
    DWELL_S, OUTCOME_WINDOW_S, SLATE_GAP_S, TASK_ACTIONS, Outcomes, Slate, SlateTracker, sample_candidates,
    slate_source, view_outcomes,
)
from streams.schemas import (
    ActionType, HireConfirmed, JobClosedEvent, JobPosted, JobUpdated, MemberActed, ScoreRequested,
)
from streams.state import MemberState

SURFACES = ("recommendations", "search", "promoted")
ALL = "all"
SEGMENTS = ("all", "cold", "warm")
DAY = 86400.0


@dataclass(frozen=True)
class Variant:
    """One ranker under evaluation, with the retrieval setting that feeds it."""

    name: str
    scorer: Scorer
    retrieval: str = "hybrid"  # a key of ReplayConfig.retrievals
    sample: float = 1.0  # share of evaluation points this variant scores (slow models)
    retrieve_k: int | None = None  # candidates it ranks on the engine path (None: the config's)


# What a replay evaluates when no tasks are given (`tasks=()`), by slate source.
DEFAULT_TASKS = {"impressions": ("click", "apply"), "views": ("view", "dwell", "apply")}
MIN_POSITIVES = 20  # fewer positives than this for a task, and its metrics are noise: the report says so


@dataclass(frozen=True)
class ReplayConfig:
    tasks: tuple[str, ...] = ("click", "apply")  # () = DEFAULT_TASKS of the slate source
    k: int = 10  # results shown per request
    retrieve_k: int = 100  # candidates retrieved per request
    retrievals: Mapping[str, str] = field(default_factory=lambda: {"hybrid": "hybrid,exact"})
    engine_sample: float = 1.0  # share of slates that also run retrieve -> rank -> top k
    slate_gap_s: float = SLATE_GAP_S
    outcome_window_s: float = OUTCOME_WINDOW_S  # an action counts this long after the job was shown
    hire_window_s: float = 30 * DAY
    cold_start_max: int = 3  # fewer past interactions (views included) than this = cold start
    slates: str = "auto"  # "impressions", "views" or "auto" (serving.slates)
    dwell_s: float = DWELL_S  # a view this long or longer is a positive of the dwell task
    views_candidates: int = 100  # views slates: open jobs scored per slate (sampled beyond it)
    min_positives: int = MIN_POSITIVES
    seed: int = 0  # decides the samples
    engine: EngineConfig = field(default_factory=EngineConfig)
    encoder: str | None = None  # a PLM4Job checkpoint for the dense column (default: hashed terms)
    evaluate_from: float | None = None  # epoch s: points before it only build state (a model trained on them)


# ---- evaluation points ------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    request_id: str
    member_id: str
    job_id: str
    surface: str
    t: float


@dataclass(frozen=True)
class Requested:
    request_id: str
    member_id: str
    surface: str
    query: str | None
    t: float


@dataclass
class Future:
    """What pass one learned: outcomes per (member, job), and the points by log position."""

    outcomes: Outcomes
    hires: dict[tuple[str, str], float] = field(default_factory=dict)
    points: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))
    actions_seen: set[str] = field(default_factory=set)  # which kinds of action the log holds

    def relevant(self, member_id: str, task: str, start: float) -> set[str]:
        """Jobs that make `task` positive for the member in the outcome window after `start`."""
        return set().union(*(self.outcomes.jobs_with(member_id, a, start) for a in TASK_ACTIONS[task]))


def read_future(records: Iterable[LogRecord], slate_gap_s: float, outcome_window_s: float,
                dwell_s: float = DWELL_S) -> Future:
    """Pass one: labels and evaluation points, keyed by the log position they precede.
    Slates and outcomes are `serving.slates`', as the training examples' are; views are
    outcomes too (the view and dwell tasks)."""
    fut = Future(Outcomes(outcome_window_s))
    slates = SlateTracker(slate_gap_s)
    for rec in records:
        ev, t = rec.event, rec.t
        if isinstance(ev, MemberActed):
            a = ev.payload
            fut.actions_seen.add(a.action.value)
            if a.action is ActionType.SEARCH:
                slates.searched(a.member_id, a.query)
            elif a.action is ActionType.VIEW:
                slate, opened = slates.view(a.member_id, a.surface.value, a.job_id, t, ev.event_id)
                if opened:
                    fut.points[rec.seq].append(slate)
                for outcome in view_outcomes(a.dwell_s, dwell_s):
                    fut.outcomes.add(a.member_id, a.job_id, outcome, t)
            else:
                fut.outcomes.add(a.member_id, a.job_id, a.action.value, t)
                if a.action is ActionType.APPLY:
                    fut.points[rec.seq].append(Application(f"{a.member_id}/apply/{ev.event_id}", a.member_id,
                                                           a.job_id, a.surface.value, t))
        elif isinstance(ev, HireConfirmed):
            h = ev.payload
            fut.hires.setdefault((h.member_id, h.job_id), t)
            fut.outcomes.add(h.member_id, h.job_id, "hired", t)
        elif isinstance(ev, ScoreRequested):
            r = ev.payload
            fut.points[rec.seq].append(Requested(r.request_id, r.member_id, r.surface.value, r.query, t))
    return fut


# ---- accumulating ------------------------------------------------------------------


@dataclass
class Group:
    """Everything measured for one (variant, surface, task, segment)."""

    requests: int = 0
    scores: list[float] = field(default_factory=list)  # pooled impressions, for AUC
    labels: list[int] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    engine_requests: int = 0
    recall: list[float] = field(default_factory=list)
    apply_rate: list[float] = field(default_factory=list)
    hire_rate: list[float] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)
    reshown: list[float] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)

    def summary(self, catalog_size: int) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "impressions": len(self.labels),
            "positives": int(sum(self.labels)),
            "auc": M.auc(self.scores, self.labels) if self.labels else float("nan"),
            "ndcg@10": M.nanmean(self.ndcg),
            "mrr": M.nanmean(self.rr),
            "engine_requests": self.engine_requests,
            "recall@retrieve_k": M.nanmean(self.recall),
            "apply_rate@k": M.nanmean(self.apply_rate),
            "hire_rate@k": M.nanmean(self.hire_rate),
            "coverage@k": M.coverage([self.shown], catalog_size) if self.engine_requests else float("nan"),
            "diversity@k": M.nanmean(self.diversity),
            "dismissed_reshown@k": M.nanmean(self.reshown),
        }


def _in_sample(seed: int, request_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    h = hashlib.blake2b(f"{seed}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64 < rate


@dataclass
class ReplayResult:
    config: ReplayConfig
    variants: list[str]
    metrics: dict[str, Any]  # deterministic figures, nested variant -> surface -> task -> segment
    over_time: dict[str, Any]  # variant -> task -> day -> ndcg@10
    replay: dict[str, Any]  # events, skipped lines, points, freshness (deterministic)
    timings: dict[str, Any]  # wall-clock: latency distributions, events/s (not deterministic)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict, repr=False)


class Replayer:
    def __init__(self, variants: Sequence[Variant], config: ReplayConfig | None = None):
        if not variants:
            raise ValueError("a replay needs at least one variant")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        self.config = self._requested = config or ReplayConfig()  # run() resolves "auto" per log
        for v in variants:
            if v.retrieval not in self.config.retrievals:
                raise ValueError(f"variant {v.name!r} wants retrieval {v.retrieval!r}; "
                                 f"configured: {sorted(self.config.retrievals)}")
        self.variants = list(variants)
        self._shared: dict[Any, Any] = {}

    def run(self, records: Iterable[LogRecord] | Iterable[Any], second_pass: Iterable[LogRecord] | None = None,
            read_report: ReadReport | None = None, progress: bool = False, total: int | None = None) -> ReplayResult:
        """Replay `records` (LogRecords or bare events). Pass `second_pass` to stream a
        file twice instead of holding it in memory."""
        if second_pass is None:
            records = list(as_records(records))
            second_pass = records
        asked = self._requested
        fut = read_future(records, asked.slate_gap_s, asked.outcome_window_s, asked.dwell_s)
        source = slate_source(asked.slates, fut.actions_seen)
        self.config = cfg = replace(asked, slates=source, tasks=asked.tasks or DEFAULT_TASKS[source])
        unknown = [t for t in cfg.tasks if t not in TASK_ACTIONS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {sorted(TASK_ACTIONS)}")
        open_jobs = _OpenJobs()
        engine = MatchingEngine(None, cfg.engine, retrievals=cfg.retrievals, embedder=load_encoder(cfg.encoder))
        groups: dict[tuple[str, str, str, str], Group] = defaultdict(Group)
        daily: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        lat: dict[str, list[float]] = defaultdict(list)
        state_age: list[float] = []
        counts = defaultdict(int)
        last_t = -math.inf
        t_start = None
        wall0 = time.perf_counter()
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (piped logs get no carriage returns)
        for rec in tqdm(second_pass, total=total, desc="replay", unit="ev", disable=None if progress else True,
                        mininterval=1.0):
            t = rec.t
            if t < last_t:
                raise LogOrderError(rec.seq, rec.event.event_id, t, last_t)
            last_t = t
            t_start = t if t_start is None else t_start
            for point in fut.points.get(rec.seq, ()):
                if cfg.evaluate_from is not None and t < cfg.evaluate_from:
                    counts["points_before_evaluation"] += 1
                    continue
                state = engine.member(point.member_id)
                if state is None or state.profile is None:
                    counts["points_without_profile"] += 1
                    continue
                counts[f"points_{type(point).__name__.lower()}"] += 1
                state_age.append(t - state.last_event_time)
                day = int((t - t_start) // DAY)
                seg = "cold" if state.n_interactions < cfg.cold_start_max else "warm"
                self._shared = {}  # per point: retrievals and slate scores variants can share
                for v in self.variants:
                    if not _in_sample(cfg.seed, f"{v.name}:{point.request_id}", v.sample):
                        continue
                    if isinstance(point, Slate):
                        self._slate(engine, fut, v, point, state, seg, groups, daily, lat, day, open_jobs)
                    elif isinstance(point, Application):
                        self._application(engine, fut, v, point, state, seg, groups)
                    else:
                        self._engine_path(engine, fut, v, point, state, seg, groups, lat, tasks=cfg.tasks[:1])
            engine.apply(rec.event)
            open_jobs.changed(rec.event)
            counts["events"] += 1
        wall = time.perf_counter() - wall0
        catalog_size = sum(1 for e in engine.catalog.values() if e.job is not None)
        metrics = self._summarize(groups, catalog_size)
        warnings = positive_warnings(metrics, self.variants[0].name, (*cfg.tasks, "hire"), cfg.min_positives)
        warnings += sampled_warnings(metrics, [v.name for v in self.variants], (*cfg.tasks, "hire"), cfg.min_positives)
        over_time = {v.name: {task: {str(d): M.nanmean(daily[(v.name, task, d)])
                                     for d in sorted({d for (n, tk, d) in daily if n == v.name and tk == task})}
                              for task in cfg.tasks} for v in self.variants}
        replay_info = {
            "slates": cfg.slates,
            "warnings": warnings,
            "events": counts["events"],
            "skipped_lines": read_report.n_skipped if read_report else 0,
            "skipped_examples": [f"line {n}: {r}" for n, r in (read_report.skipped[:5] if read_report else [])],
            "points": {k[len("points_"):]: v for k, v in sorted(counts.items()) if k.startswith("points_")},
            "catalog_size": catalog_size,
            "hires": len(fut.hires),
            "links_learned_from_hires": engine.links.hires,
            "links_learned_from_applies": engine.links.applies,
            "events_behind_at_scoring": 0,  # in process, every earlier event is folded first
            "member_state_age_s": {**M.percentiles(state_age, (50, 95)), "mean": M.nanmean(state_age)},
        }
        timings = {
            "replay_seconds": wall,
            "events_per_s": counts["events"] / wall if wall > 0 else float("nan"),
            "latency_ms": {name: {**M.percentiles(xs), "mean": M.nanmean(xs), "n": len(xs)}
                           for name, xs in sorted(lat.items())},
        }
        return ReplayResult(cfg, [v.name for v in self.variants], metrics, over_time, replay_info, timings, dict(lat))

    # -- one point, one variant

    def _cells(self, v: Variant, surface: str, task: str, seg: str) -> list[tuple[str, str, str, str]]:
        return [(v.name, s, task, g) for s in (surface, ALL) for g in (seg, "all")]

    def _slate(self, engine, fut, v, slate: Slate, state, seg, groups, daily, lat, day, open_jobs) -> None:
        cfg = self.config
        if cfg.slates == "views":  # no impressions: the jobs open now, the viewed ones positive
            key = ("views-candidates",)
            if key not in self._shared:
                positives = set().union(*(fut.relevant(slate.member_id, t, slate.start) for t in cfg.tasks))
                ids = sample_candidates(open_jobs.ids(engine), engine.is_open, positives, cfg.views_candidates,
                                        f"{cfg.seed}:{slate.slate_id}")
                self._shared[key] = ids
            ids = self._shared[key]
            shown_at = dict.fromkeys(ids, slate.start)
        else:
            ids, shown_at = slate.shown, slate.shown_at
        cands = engine.candidates(ids)
        if not cands:
            return
        key = ("slate", id(v.scorer))
        scores_by_task = self._shared.get(key)
        if scores_by_task is None:  # two variants with one scorer differ only in retrieval
            scores_by_task = _scores_by_task(v.scorer, state, cands, cfg.tasks, slate.start, slate.query)
            self._shared[key] = scores_by_task
        for task in cfg.tasks:
            scores = scores_by_task[task]
            labels = [fut.outcomes.label(task, slate.member_id, c.job.job_id, shown_at[c.job.job_id])
                      for c in cands]
            nd = M.ndcg_at_k(scores, labels, 10) if any(labels) else float("nan")
            rr = M.reciprocal_rank(scores, labels) if any(labels) else float("nan")
            for cell in self._cells(v, slate.surface, task, seg):
                g = groups[cell]
                g.requests += 1
                g.scores.extend(float(s) for s in scores)
                g.labels.extend(labels)
                g.ndcg.append(nd)
                g.rr.append(rr)
            daily[(v.name, task, day)].append(nd)
        if _in_sample(cfg.seed, f"engine:{slate.request_id}", cfg.engine_sample):
            point = Requested(slate.request_id, slate.member_id, slate.surface, slate.query, slate.start)
            self._engine_path(engine, fut, v, point, state, seg, groups, lat, cfg.tasks)

    def _engine_path(self, engine, fut, v, point: Requested, state, seg, groups, lat, tasks) -> None:
        """Retrieve -> rank -> top k, as a live request would be answered right now."""
        cfg = self.config
        t0 = time.perf_counter()
        key = ("retrieve", v.retrieval, v.retrieve_k or cfg.retrieve_k)
        hit = self._shared.get(key)
        if hit is None:
            cands, _ = engine.retrieve(state, point.surface, point.query, k=v.retrieve_k or cfg.retrieve_k,
                                       retrieval=v.retrieval)
            hit = self._shared[key] = (cands, (time.perf_counter() - t0) * 1e3)
        cands, retrieve_ms = hit
        t1 = time.perf_counter()
        scores_by_task = _scores_by_task(v.scorer, state, cands, tasks, point.t, point.query)
        t2 = time.perf_counter()
        # a shared retrieval is charged to every variant at what it cost once
        lat[f"{v.name}/retrieve"].append(retrieve_ms)
        lat[f"{v.name}/rank"].append((t2 - t1) * 1e3)
        lat[f"{v.name}/total"].append(retrieve_ms + (t2 - t1) * 1e3)
        retrieved = [c.job.job_id for c in cands]
        applied = fut.outcomes.jobs_with(point.member_id, "apply", point.t)
        hired = fut.outcomes.jobs_with(point.member_id, "hired", point.t, cfg.hire_window_s)
        dismissed_before = {it.job.job_id for it in state.history if it.action == "dismiss" and it.job}
        for task in tasks:
            scores = scores_by_task[task]
            top = [cands[i] for i in top_k_order(scores, cfg.k)]
            top_ids = [c.job.job_id for c in top]
            relevant = fut.relevant(point.member_id, task, point.t)
            recall = M.recall_at_k(retrieved, relevant)
            for cell in self._cells(v, point.surface, task, seg):
                g = groups[cell]
                g.engine_requests += 1
                g.recall.append(recall)
                if top:
                    g.apply_rate.append(M.hit_rate(top_ids, applied))
                    g.hire_rate.append(M.hit_rate(top_ids, hired))
                    g.diversity.append(M.distinct_share([c.job.occupation or c.job.title for c in top]))
                    g.reshown.append(M.hit_rate(top_ids, dismissed_before))
                    g.shown.update(top_ids)

    def _application(self, engine, fut, v, app: Application, state, seg, groups) -> None:
        cands = engine.candidates([app.job_id])
        if not cands:
            return
        score = float(v.scorer.score(state, cands, "hire", app.t, None)[0])
        label = int(app.t <= fut.hires.get((app.member_id, app.job_id), math.inf) <= app.t + self.config.hire_window_s)
        for cell in self._cells(v, app.surface, "hire", seg):
            g = groups[cell]
            g.requests += 1
            g.scores.append(score)
            g.labels.append(label)

    def _summarize(self, groups, catalog_size) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (name, surface, task, seg), g in sorted(groups.items()):
            out.setdefault(name, {}).setdefault(surface, {}).setdefault(task, {})[seg] = g.summary(catalog_size)
        return out


class _OpenJobs:
    """The ids of the jobs open in the engine's catalog, rebuilt only after a job event."""

    def __init__(self) -> None:
        self._ids: list[str] | None = None

    def changed(self, event: Any) -> None:
        if isinstance(event, (JobPosted, JobUpdated, JobClosedEvent)):
            self._ids = None

    def ids(self, engine: MatchingEngine) -> list[str]:
        if self._ids is None:
            self._ids = sorted(j for j, e in engine.catalog.items() if e.open and e.job is not None)
        return self._ids


def positive_warnings(metrics: Mapping[str, Any], variant: str, tasks: Sequence[str], minimum: int) -> list[str]:
    """A loud line per task whose labels cannot carry its metrics: no positives at all
    (AUC, NDCG and MRR are undefined) or fewer than `minimum` (they are noise)."""
    out = []
    for task in tasks:
        cell = metrics.get(variant, {}).get(ALL, {}).get(task, {}).get("all")
        if cell is None:
            if task != "hire":
                out.append(f"task {task!r}: no evaluation points at all")
            continue
        n, impressions = cell["positives"], cell["impressions"]
        if n == 0:
            out.append(f"task {task!r}: NO POSITIVES in {impressions:,} impressions: its AUC, NDCG and MRR "
                       f"are undefined (does the log hold the action it is labelled by: "
                       f"{', '.join(TASK_ACTIONS.get(task, ('hired',)))}?)")
        elif n < minimum:
            out.append(f"task {task!r}: only {n} positives in {impressions:,} impressions (fewer than {minimum}): "
                       f"its metrics are noise")
    return out


def sampled_warnings(metrics: Mapping[str, Any], variants: Sequence[str], tasks: Sequence[str],
                     minimum: int) -> list[str]:
    """`positive_warnings` for each variant after the first whose points differ from the
    first's (a slow model scores a sample): its few positives are noise of its own, and
    the first variant's counts do not speak for it."""
    def counts(variant: str, task: str):
        cell = metrics.get(variant, {}).get(ALL, {}).get(task, {}).get("all")
        return None if cell is None else (cell["impressions"], cell["positives"])

    out = []
    for variant in variants[1:]:
        for task in tasks:
            if counts(variant, task) != counts(variants[0], task):
                out += [f"{variant}: {w}" for w in positive_warnings(metrics, variant, (task,), minimum)]
    return out


def _scores_by_task(scorer: Scorer, state: MemberState, cands: Sequence[Candidate], tasks: Sequence[str],
                    now: float, query: str | None) -> dict[str, np.ndarray]:
    """Scores per task; a scorer that ignores the task (`task_aware = False`) runs once, and
    one that answers several tasks in one pass (`score_tasks`, the LM ranker) is asked once."""
    if hasattr(scorer, "score_tasks"):
        return {t: np.asarray(s, dtype=np.float64)
                for t, s in scorer.score_tasks(state, cands, tasks, now, query).items()}
    if not getattr(scorer, "task_aware", True):
        s = np.asarray(scorer.score(state, cands, tasks[0], now, query), dtype=np.float64)
        return {task: s for task in tasks}
    return {task: np.asarray(scorer.score(state, cands, task, now, query), dtype=np.float64) for task in tasks}


def replay(records: Iterable[Any], variants: Sequence[Variant], config: ReplayConfig | None = None,
           **kwargs: Any) -> ReplayResult:
    return Replayer(variants, config).run(records, **kwargs)


def replay_file(path: str | Path, variants: Sequence[Variant], config: ReplayConfig | None = None,
                progress: bool = False) -> ReplayResult:
    """Replay a log file, streaming it twice (never all in memory); malformed lines are
    skipped and counted."""
    report = ReadReport()
    first = read_log(path, report)
    return Replayer(variants, config).run(first, second_pass=_reread(path), read_report=report,
                                          progress=progress, total=None)


def _reread(path: str | Path) -> Iterator[LogRecord]:
    return read_log(path, ReadReport())


# ---- the end of `make run` ---------------------------------------------------------


def find_rankers(artifacts: str | Path | None = None) -> list[Path]:
    """Ranker checkpoints under `artifacts/` (folders holding ranker.json and config.json)."""
    from streams.settings import get_settings

    root = Path(artifacts) if artifacts is not None else get_settings().artifacts_dir
    if not root.exists():
        return []
    return sorted(p.parent for p in root.glob("*/ranker.json") if (p.parent / "config.json").exists())


def default_variants(artifacts: str | Path | None = None, ranker_sample: float = 0.03,
                     ranker_k: int = 20, rankers: bool | Sequence[Path] = True) -> list[Variant]:
    """Baselines on two retrieval settings, plus ranker checkpoints (every one found, or
    the folders given) on a small deterministic sample of points: an LM on CPU scores
    tens of jobs a second."""
    from serving.online.scorer import BM25Scorer, PopularityScorer, RankerScorer

    bm25 = BM25Scorer()
    out = [Variant("popularity", PopularityScorer()), Variant("bm25", bm25),
           Variant("bm25/term-only", bm25, retrieval="term")]
    paths = find_rankers(artifacts) if rankers is True else list(rankers or [])
    for path in paths:
        out.append(Variant(f"ranker:{path.name}", RankerScorer.load(path, name=f"ranker:{path.name}", device="cpu"),
                           sample=ranker_sample, retrieve_k=ranker_k))
    return out


HEADLINE_RETRIEVALS = {"hybrid": "hybrid,exact", "term": "term,exact"}


def headline(log_or_events: str | Path | Iterable[Any], out_dir: str | Path | None = None, *, seed: int = 0,
             artifacts: str | Path | None = None, engine_sample: float = 0.1, rankers: bool | Sequence[Path] = True,
             ranker_sample: float = 0.03, progress: bool = True, evaluate_from: float | None = None):
    """Replay a log (path) or events (the day `make run` just streamed), evaluate the
    baselines and any ranker checkpoint side by side, write the report.

    Returns (rich Table of the headline, path of report.md). ~60k events take well
    under a minute with the baselines on two CPU cores."""
    from serving.evaluation.report import rich_table, write_report
    from streams.settings import get_settings

    out = Path(out_dir) if out_dir is not None else get_settings().artifacts_dir / "replay"
    config = ReplayConfig(retrievals=HEADLINE_RETRIEVALS, engine_sample=engine_sample, seed=seed,
                          evaluate_from=evaluate_from)
    variants = default_variants(artifacts, rankers=rankers, ranker_sample=ranker_sample)
    if isinstance(log_or_events, (str, Path)):
        result = replay_file(log_or_events, variants, config, progress=progress)
    else:
        records = list(as_records(log_or_events))
        result = Replayer(variants, config).run(records, progress=progress, total=len(records))
    paths = write_report(result, out)
    return rich_table(result, title=f"replay of {result.replay['events']:,} events: models side by side"), paths["report"]
