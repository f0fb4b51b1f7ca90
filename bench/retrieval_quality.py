"""Retrieval quality on the simulator: do the jobs members later apply to / get hired
into come back in their top 100 / 500? Term-only, dense-only, learned-links-only and
the one-pass hybrid, side by side.

    .venv/bin/python bench/retrieval_quality.py                    # 3 marketplaces of 5,000 members, 35 days; ~10 min
    .venv/bin/python bench/retrieval_quality.py --seeds 7          # one marketplace
    .venv/bin/python bench/retrieval_quality.py --quick --seeds 7  # small, 3.5 min with the held-out columns
    .venv/bin/python bench/retrieval_quality.py --quick --seeds 7 --no-held-out  # 40 s

One marketplace holds ~300 held-out hires, and the hybrid and term-only rankings differ
on only a few of them at @100 (seed 7 alone: 302 hits each, or one apart, run to run);
so several simulated marketplaces (`--seeds`), each tuned and evaluated on its own, are
pooled to count such a difference over ~900 hires, and each seed's row is printed too.

The simulated event log is replayed in event-time order through the same index calls
the stream makes (job posted / closed -> upsert / delete, hire / apply ->
LinkGraph.add_hire / add_apply, dismiss -> MemberRules.update). Links count applies for
the serving engine's window (`--apply-window-days`, four weeks) and hires for ever. The
first --train-days only build state. On each later
day, at the day's end, every member who applied or was hired that day is queried with
the state as it stood at the start of that day (links, rules) over the jobs open that
day, and each of the day's applies / hires is a held-out target. Nothing a member does
on a day is seen before that day is scored.

The hybrid's fusion weights are chosen on the last --val-days of the training days and
then frozen for the evaluated days; the row "hybrid (default weights)" shows the untuned
(1, 1, 1). The choice (`choose_weights`) follows what the hybrid is for, beating every
single method on applies and on hires alike: the grid setting whose worse kind gains the
most validation recall@100 over the best single method on that kind (ties: most hits).
Until 2026-12-06 it was, among the settings that beat every single method on both kinds,
the one with the most hits; applies outnumber hires five to one, so that rule let the
applies decide, and picked a link weight at which the hybrid only tied links alone on
hires (docs/graph-signals.md).

The dense column is the PLM4Job encoder (`--dense plm4job`, the default): trained here
by link prediction on the applies and hires *before* the tuning days, so the tuned
weights were not chosen on what it was trained on; once they are chosen it is retrained
on every training day (the usual refit on training + validation data; `--no-refit`
keeps the first model) and the open jobs are re-embedded, so the evaluated days are
never seen by it. Its graph grows with the replay (entities as they arrive, each day's
applies and hires after that day is scored). `--dense hashed` is the index's first
embedder (hashed job terms).

Targets come in four kinds: applies, hires, and their career moves (applies and hires
along a path from the member's occupation to an adjacent one, streams/simulator/careers.py;
also counted among the applies and hires), each with its own columns. A hire follows the
member's apply to that job, which every column may already know (the encoder's ego
graph holds it, the links count it); a move apply is a fresh target. What the learned
links add is measured by two arms tuned like the hybrid but only among link weights > 0 ("hybrid
with links") or = 0 ("hybrid without links"), compared target by target with a
two-sided sign test. The held-out marketplace (streams/simulator/held_out.py) is run
at its declared size with every weight frozen from the tuning seeds' pooled
validation hits, and printed beside them (recall@100 +- binomial SE), with the
replications of its configuration (other seeds, `REPLICATION_SEEDS`; `--replication-seeds`
runs a subset, as each judgement names its own fresh draws) pooled in a column of their
own (`--no-replications` skips them);
`--career-move-share 0 --community-strength 0` gives the marketplace before the graph
signals.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tqdm import tqdm  # noqa: E402

from index import (  # noqa: E402
    SENIORITY_LEVELS, FeedbackRules, JobIndex, LinkGraph, MemberRules, Query, as_member, member_attributes,
    member_query,
)
from index.feedback import PENALTY_CAP, PENALTY_STEP  # noqa: E402
from index.terms import seniority_term  # noqa: E402
from models.ego_embedder import EgoGraphEmbedder  # noqa: E402
from models.ego_graph import HeteroGraph  # noqa: E402
from models.encoder_training import PromptSpec, TrainConfig, train_link_prediction  # noqa: E402
from serving.online.engine import EngineConfig  # noqa: E402
from serving.training.encoder_run import ModelShape, build_tokenizer_and_builder, new_variant  # noqa: E402
from serving.graph_data import apply_graph_event, split_events  # noqa: E402
from streams.simulator import Marketplace, MarketplaceConfig  # noqa: E402
from streams.simulator.held_out import HELD_OUT_MARKETPLACE, REPLICATION_SEEDS, refuse_tuning  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 200)
METHODS = ("term only", "dense only", "links only", "hybrid (default weights)", "hybrid", "hybrid with links",
           "hybrid without links",
           "hybrid + feedback rules", "hybrid + rules, dismissed jobs shown", "hybrid + previous seniority rule",
           "hybrid + previous seniority rule, dismissed jobs shown")
TUNED = METHODS[4:]
SINGLE = METHODS[:3]
# Targets: applies, hires, and those along a career path (streams/simulator/careers.py:
# the member's occupation leads to the job's), which are also counted among the others.
KINDS = ("apply", "move apply", "hire", "move hire")
PLURAL = {"apply": "applies", "move apply": "career-move applies", "hire": "hires", "move hire": "career-move hires"}
PAIRED = SINGLE + ("hybrid without links",)  # each against the tuned hybrid, target by target
# The hybrid tuned among link weights > 0 and among link weight 0: the test of what the
# learned links add, whether or not the overall tuning gives them weight.
LINK_ARMS = {"hybrid with links": True, "hybrid without links": False}
# Term weight 1 fixes the scale; dense and links each reach 10 times it, since either
# can be the strongest column (links learned from applies are, on hires and career moves).
VALIDATION_TARGETS = "validation targets"  # the key that counts them in `Scores.tuning`
GRID = [{"dense": d, "term": 1.0, "link": l} for d in (0.0, 0.1, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
        for l in (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)]


def queries_for(method: str, member, index: JobIndex, links: LinkGraph, rules: FeedbackRules) -> Query:
    m = as_member(member)
    if method == "term only":
        return replace(member_query(m), embedding=None)
    if method == "dense only":
        return Query(embedding=index.embedder.embed_members([m])[0])
    if method == "links only":
        terms, sources = links.expand(member_attributes(m), top=64)
        return Query(links=terms, link_sources=sources)
    if method == "hybrid without links":
        return member_query(m, index.embedder)
    if method.startswith("hybrid") and "rule" not in method:
        return member_query(m, index.embedder, links)
    if "previous seniority rule" in method:
        q = previous_seniority_rule(member_query(m, index.embedder, links), rules.for_member(m.member_id))
    else:
        q = member_query(m, index.embedder, links, rules.for_member(m.member_id))
    # the simulator's members apply to jobs they once dismissed (bench/simulator_truth.py):
    # this row separates what hiding those jobs costs from what masks and penalties cost
    return replace(q, exclude_ids=frozenset()) if "dismissed jobs shown" in method else q


def previous_seniority_rule(query: Query, rules: MemberRules) -> Query:
    """The rules as they were before the seniority fix, for comparison: a too-senior
    (too-junior) dismissal counted against its own level and every level above (below);
    a level with two such dismissals masked, with one penalized."""
    forbid, penalties = set(rules.blocked_companies), dict(rules.penalties)
    for rank, level in enumerate(SENIORITY_LEVELS):
        n = sum(r <= rank for r in rules.too_senior) + sum(r >= rank for r in rules.too_junior)
        if n >= 2:
            forbid.add(seniority_term(level))
        elif n:
            penalties[seniority_term(level)] = min(PENALTY_CAP, PENALTY_STEP * n)
    return replace(query, forbid=query.forbid | frozenset(forbid), penalties={**query.penalties, **penalties},
                   exclude_ids=query.exclude_ids | frozenset(rules.dismissed_jobs))


class DayCachedMembers:
    """An embedder whose member vectors are computed once per simulated day: every
    method and grid point of a day asks for the same members (state moves at day end)."""

    def __init__(self, inner):
        self.inner, self.dim, self._members = inner, inner.dim, {}

    def embed_jobs(self, jobs):
        return self.inner.embed_jobs(jobs)

    def embed_members(self, members):
        missing = [m for m in members if as_member(m).member_id not in self._members]
        if missing:
            for m, v in zip(missing, self.inner.embed_members(missing)):
                self._members[as_member(m).member_id] = v
        return np.stack([self._members[as_member(m).member_id] for m in members])

    def new_day(self) -> None:
        self._members.clear()


def train_plm4job(cfg: MarketplaceConfig, args, before_day: int):
    """(model, prompt builder): the PLM4Job encoder trained on the links before a day."""
    cutoff = (cfg.start + timedelta(days=before_day)).timestamp()
    split = split_events(Marketplace(cfg).events(), cutoff)
    shape, spec = ModelShape(), PromptSpec()
    tokenizer, builder = build_tokenizer_and_builder(split, shape, spec)
    model = new_variant(tokenizer, shape, spec, args.seed)
    console.print(f"training PLM4Job on {len(split.train_links)} links before day {before_day} "
                  f"({args.encoder_steps} steps) ...")
    train_link_prediction(model, builder, split.graph, split.train_links,
                          TrainConfig(max_steps=args.encoder_steps, seed=args.seed), progress=True)
    return model, builder


def plm4job_embedder(cfg: MarketplaceConfig, args) -> EgoGraphEmbedder:
    """The PLM4Job encoder trained on the links before the tuning days, over a graph
    that starts empty (the replay fills it)."""
    return EgoGraphEmbedder(*train_plm4job(cfg, args, args.train_days - args.val_days), HeteroGraph())


@dataclass
class Scores:
    hits: dict = field(default_factory=lambda: defaultdict(int))  # (method, kind, k) -> hits
    found: dict = field(default_factory=lambda: defaultdict(set))  # (method, kind, k) -> {(member, job)} hit
    targets: dict = field(default_factory=lambda: defaultdict(int))  # kind -> count
    missing: int = 0  # targets whose job was not open in the index (cannot be retrieved)
    # (grid index or method, kind) -> validation hits@100; (VALIDATION_TARGETS, kind) -> targets
    tuning: dict = field(default_factory=lambda: defaultdict(int))
    qualified: dict = field(default_factory=lambda: defaultdict(float))  # method -> sum of qualified shares
    qualified_n: int = 0  # member-days in that sum
    weights: dict = field(default_factory=lambda: dict(GRID[0]))
    arm_weights: dict = field(default_factory=dict)  # LINK_ARMS method -> its weights


def _targets_by_member(day_targets, index) -> tuple[dict[str, list[tuple[str, str]]], Counter, int]:
    """The day's targets whose job is open, by member; how many of each kind; how many
    were not open (they cannot be retrieved)."""
    by_member: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for member_id, job_id, kind in day_targets:
        if job_id in index:
            by_member[member_id].append((job_id, kind))
    kinds = Counter(kind for targets in by_member.values() for _, kind in targets)
    return by_member, kinds, len(day_targets) - sum(kinds.values())


def tune_day(day_targets, members, index, links, scores: Scores) -> None:
    """Validation: hits@100 on applies and hires for each fusion-weight setting of the grid."""
    by_member, kinds, _ = _targets_by_member(day_targets, index)
    member_ids = sorted(by_member)
    if not member_ids:
        return
    for kind, n in kinds.items():
        scores.tuning[(VALIDATION_TARGETS, kind)] += n

    def queries(method: str) -> list[Query]:
        return [queries_for(method, members[m], index, links, FeedbackRules()) for m in member_ids]

    hybrid = queries("hybrid")  # one query list for every grid setting: only the weights change
    runs = [(g, hybrid, w) for g, w in enumerate(GRID)] + [(method, queries(method), None) for method in SINGLE]
    for key, qs, w in runs:
        res = index.search(qs, k=100, weights=w)
        for i, member_id in enumerate(member_ids):
            got = set(res.ids[i])
            for job_id, kind in by_member[member_id]:
                scores.tuning[(key, kind)] += job_id in got


def choose_weights(tuning: dict, links: bool | None = None) -> dict:
    """The grid setting whose worse kind of validation target (applies, hires) gains the
    most recall over the best single method on that kind; ties go to the most hits, then
    to the first setting. Recall, not hits: each kind counts alike however many targets
    it has. `links` True / False: only among the settings with link weight > 0 / = 0."""
    kinds = ("apply", "hire")
    best_single = {kind: max(tuning.get((m, kind), 0) for m in SINGLE) for kind in kinds}
    n = {kind: max(1, tuning.get((VALIDATION_TARGETS, kind), 0)) for kind in kinds}

    def rank(g: int) -> tuple:
        gain = min((tuning.get((g, kind), 0) - best_single[kind]) / n[kind] for kind in kinds)
        return (gain, sum(tuning.get((g, kind), 0) for kind in kinds), -g)

    grid = [g for g in range(len(GRID)) if links is None or (GRID[g]["link"] > 0) == links]
    return dict(GRID[max(grid, key=rank)])


QUALIFIED_SAMPLE = 40  # members per day whose top 100 is checked against the hidden truth


def evaluate_day(day_targets, members, index, links, rules, ks, scores: Scores, truth) -> None:
    by_member, kinds, missing = _targets_by_member(day_targets, index)
    scores.missing += missing
    for kind, n in kinds.items():
        scores.targets[kind] += n
    if not by_member:
        return
    member_ids = sorted(by_member)
    sample = member_ids[:QUALIFIED_SAMPLE]
    scores.qualified_n += len(sample)
    for method in METHODS:
        tuned = scores.arm_weights.get(method, scores.weights if method in TUNED else None)
        res = index.search([queries_for(method, members[m], index, links, rules) for m in member_ids], k=max(ks),
                           weights=tuned)
        for i, member_id in enumerate(sample):  # links are meant to find jobs members can do
            top = [j for j in res.ids[i][:100] if j is not None]
            scores.qualified[method] += sum(truth.qualified(member_id, j) for j in top) / max(1, len(top))
        for i, member_id in enumerate(member_ids):
            ranked = {j: r for r, j in enumerate(res.ids[i]) if j is not None}
            for job_id, kind in by_member[member_id]:
                rank = ranked.get(job_id)
                for k in ks:
                    if rank is not None and rank < k:
                        scores.hits[(method, kind, k)] += 1
                        scores.found[(method, kind, k)].add((member_id, job_id))


def tuning_config(args) -> MarketplaceConfig:
    """One tuning marketplace (`args.seed`), with the command line's sizes and signals."""
    return MarketplaceConfig(seed=args.seed, n_members=args.members, n_companies=args.companies,
                             n_jobs=args.jobs, days=args.days, career_move_share=args.career_move_share,
                             community_strength=args.community_strength)


def run(args, cfg: MarketplaceConfig | None = None, frozen_weights: dict | None = None) -> dict:
    """Replay one marketplace and score it. Without `frozen_weights` the fusion weights
    are tuned on its validation days (refused for the held-out marketplace); with them,
    nothing is tuned and the encoder trains once, on every training day."""
    cfg = cfg or tuning_config(args)
    tune = frozen_weights is None
    if tune:
        refuse_tuning(cfg, "fusion weights")
    sim = Marketplace(cfg)
    if args.dense != "plm4job":
        graph_embedder = None
    elif tune:
        graph_embedder = plm4job_embedder(cfg, args)
    else:
        graph_embedder = EgoGraphEmbedder(*train_plm4job(cfg, args, args.train_days), HeteroGraph())
    embedder = DayCachedMembers(graph_embedder) if graph_embedder else None
    index = JobIndex.create("hybrid,exact", dim=embedder.dim if embedder else args.dim, delta_limit=5000,
                            embedder=embedder)
    links = LinkGraph(min_support=args.min_support,
                      apply_window_s=args.apply_window_days * 86400.0 if args.apply_window_days else None)
    rules = FeedbackRules()
    members, jobs = {}, {}
    scores, ks = Scores(), tuple(int(k) for k in args.ks.split(","))
    if not tune:
        scores.weights = dict(frozen_weights["hybrid"])
        scores.arm_weights = {arm: dict(frozen_weights[arm]) for arm in LINK_ARMS}
    day, targets, closes, hires, applies, dismisses, new_links = -1, [], [], [], [], [], []
    n_train_hires = n_train_applies = 0

    def end_of_day() -> None:
        nonlocal n_train_hires, n_train_applies
        if tune and args.train_days - args.val_days <= day < args.train_days:
            tune_day(targets, members, index, links, scores)
        if tune and day == args.train_days - 1 and scores.tuning:
            scores.weights = choose_weights(scores.tuning)
            scores.arm_weights = {arm: choose_weights(scores.tuning, links=on) for arm, on in LINK_ARMS.items()}
        if tune and day == args.train_days - 1 and graph_embedder and args.refit:
            # weights chosen: the encoder is retrained on every training day, as a
            # deployment would be, and the open jobs are re-indexed with it
            graph_embedder.model, graph_embedder.builder = train_plm4job(cfg, args, args.train_days)
            embedder.new_day()
            index.upsert([jobs[j] for j in jobs if j in index])
        if day >= args.train_days:
            evaluate_day(targets, members, index, links, rules, ks, scores, sim.truth)
        # what happened today becomes state for tomorrow
        index.delete(closes)
        for member_id, job_id in hires:
            if member_id in members and job_id in jobs:
                links.add_hire(members[member_id], jobs[job_id])
                n_train_hires += day < args.train_days
        for member_id, job_id, at in applies:
            if member_id in members and job_id in jobs:
                links.add_apply(members[member_id], jobs[job_id], at=at)
                n_train_applies += day < args.train_days
        for member_id, reason, job_id in dismisses:
            if job_id in jobs:
                rules.record_dismiss(member_id, reason, jobs[job_id])
        if graph_embedder:
            for ev in new_links:
                apply_graph_event(graph_embedder.graph, ev)
            embedder.new_day()
        targets.clear(), closes.clear(), hires.clear(), applies.clear(), dismisses.clear(), new_links.clear()

    posted: list = []  # consecutive job posts go to the index as one batch, in order

    def flush() -> None:
        index.upsert(posted)
        posted.clear()

    t0 = time.perf_counter()
    for ev in tqdm(sim.events(), desc="replaying events", mininterval=2, unit="ev", disable=None):
        d = (ev.event_time - cfg.start).days
        if ev.type not in ("job.posted", "job.updated"):
            flush()
        if d != day:
            flush()
            if day >= 0:
                end_of_day()
            day = d
        p = ev.payload
        if graph_embedder:  # entities join the encoder's graph at once, links at day end
            if ev.type in ("member.action", "hire.confirmed"):
                new_links.append(ev)
            else:
                apply_graph_event(graph_embedder.graph, ev)
        if ev.type in ("job.posted", "job.updated"):
            jobs[p.job_id] = p
            posted.append(p)
        elif ev.type == "job.closed":
            closes.append(p.job_id)
        elif ev.type == "member.upserted":
            members[p.member_id] = p
        elif ev.type == "hire.confirmed":
            hires.append((p.member_id, p.job_id))
            targets.append((p.member_id, p.job_id, "hire"))
            if sim.truth.career_move(p.member_id, p.job_id):
                targets.append((p.member_id, p.job_id, "move hire"))
        elif ev.type == "member.action":
            action = p.action.value
            if action == "apply":
                applies.append((p.member_id, p.job_id, ev.event_time.timestamp()))
                targets.append((p.member_id, p.job_id, "apply"))
                if sim.truth.career_move(p.member_id, p.job_id):
                    targets.append((p.member_id, p.job_id, "move apply"))
            elif action == "dismiss":
                dismisses.append((p.member_id, p.reason.value, p.job_id))
    flush()
    end_of_day()
    return {"config": {k: getattr(cfg, k) for k in ("seed", "n_members", "n_companies", "n_jobs", "days",
                                                    "career_move_share", "community_strength", "held_out")},
            "tuning": [[g, kind, h] for (g, kind), h in scores.tuning.items()],
            # paired: targets the hybrid with links finds and the one without misses, and the reverse
            "links_paired": {f"{kind}|{k}": [len(scores.found[("hybrid with links", kind, k)]
                                                 - scores.found[("hybrid without links", kind, k)]),
                                             len(scores.found[("hybrid without links", kind, k)]
                                                 - scores.found[("hybrid with links", kind, k)])]
                             for kind in KINDS for k in ks},
            "dense": args.dense, "refit": args.refit, "apply_window_days": args.apply_window_days, "train_days": args.train_days, "val_days": args.val_days, "ks": ks,
            "tuned_weights": scores.weights, "link_arm_weights": scores.arm_weights,
            "validation_hits_at_100": {f"{GRID[g] if isinstance(g, int) else g}|{kind}": h
                                       for (g, kind), h in scores.tuning.items()}, "train_hires": n_train_hires, "train_applies": n_train_applies, "links_total_hires": links.hires,
            "links_total_applies": links.applies,
            "targets": dict(scores.targets), "targets_not_open": scores.missing,
            "hits": {f"{m}|{kind}|{k}": scores.hits[(m, kind, k)] for m in METHODS for kind in KINDS for k in ks},
            "recall": {f"{m}|{kind}|{k}": scores.hits[(m, kind, k)] / max(1, scores.targets[kind])
                       for m in METHODS for kind in KINDS for k in ks},
            "qualified_share_top100": {m: scores.qualified[m] / max(1, scores.qualified_n) for m in METHODS},
            # paired: targets the tuned hybrid finds and a single method misses, and the reverse
            "paired": {f"{m}|{kind}|{k}": [len(scores.found[("hybrid", kind, k)] - scores.found[(m, kind, k)]),
                                           len(scores.found[(m, kind, k)] - scores.found[("hybrid", kind, k)])]
                       for m in PAIRED for kind in KINDS for k in ks},
            "qualified_member_days": scores.qualified_n,
            "seconds": time.perf_counter() - t0}


def pooled_tuning(runs: list[dict]) -> dict:
    """The tuning marketplaces' validation hits (and target counts), summed."""
    tuning: dict = defaultdict(int)
    for r in runs:
        for g, kind, hits in r["tuning"]:
            tuning[(g, kind)] += hits
    return tuning


def pool(runs: list[dict]) -> dict:
    """Several simulated marketplaces (seeds) as one test set: hits, targets and paired
    counts summed, so a difference of a few targets is measured on more of them."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    targets = {kind: sum(r["targets"].get(kind, 0) for r in runs) for kind in KINDS}
    hits = {key: sum(r["hits"][key] for r in runs) for key in first["hits"]}
    n_q = sum(r["qualified_member_days"] for r in runs)
    return {**first, "seeds": [r["config"]["seed"] for r in runs], "targets": targets, "hits": hits,
            "recall": {key: h / max(1, targets[key.split("|")[1]]) for key, h in hits.items()},
            "paired": {key: [sum(r["paired"][key][i] for r in runs) for i in (0, 1)] for key in first["paired"]},
            "links_paired": {key: [sum(r["links_paired"][key][i] for r in runs) for i in (0, 1)]
                             for key in first["links_paired"]},
            "qualified_share_top100": {m: sum(r["qualified_share_top100"][m] * r["qualified_member_days"] for r in runs)
                                       / max(1, n_q) for m in METHODS},
            "qualified_member_days": n_q, "train_hires": sum(r["train_hires"] for r in runs),
            "train_applies": sum(r["train_applies"] for r in runs),
            "targets_not_open": sum(r["targets_not_open"] for r in runs),
            "tuning": [[g, kind, h] for (g, kind), h in pooled_tuning(runs).items()],
            "tuned_weights": [r["tuned_weights"] for r in runs], "link_arm_weights": [r["link_arm_weights"] for r in runs],
            "per_seed": runs,
            "seconds": sum(r["seconds"] for r in runs)}


def report_seeds(runs: list[dict]) -> None:
    t = Table(title="each seed alone: hits@100 (hybrid vs the best single method), tuned weights")
    for c in ("seed", "applies", "hires", "apply hits: hybrid / best single",
              "career-move apply hits: hybrid / best single", "hire hits: hybrid / best single",
              "career-move hire hits: hybrid / best single", "weights (dense, term, link)"):
        t.add_column(c, justify="right")
    for r in runs:
        cells = []
        for kind in KINDS:
            best = max(SINGLE, key=lambda m: r["hits"][f"{m}|{kind}|100"])
            cells.append(f"{r['hits'][f'hybrid|{kind}|100']} / {r['hits'][f'{best}|{kind}|100']} ({best})")
        w = r["tuned_weights"]
        t.add_row(str(r["config"]["seed"]), str(r["targets"].get("apply", 0)), str(r["targets"].get("hire", 0)),
                  *cells, f"{w['dense']:g}, {w['term']:g}, {w['link']:g}")
    console.print(t)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 1/2) on the discordant pairs."""
    from math import comb

    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_cell(wins: int, losses: int) -> str:
    return f"+{wins} / -{losses}, p = {sign_test(wins, losses):.2g}"


def recall_se(r: dict, method: str, kind: str, k: int = 100) -> tuple[float, float, int]:
    """(recall, binomial standard error, targets). Targets of one member are not quite
    independent, so the SE is a little optimistic; paired sign tests carry the verdicts."""
    n = r["targets"].get(kind, 0)
    p = r["hits"][f"{method}|{kind}|{k}"] / n if n else float("nan")
    return p, (p * (1 - p) / n) ** 0.5 if n else float("nan"), n


COLUMN_METHODS = ("term only", "dense only", "links only", "hybrid (default weights)", "hybrid without links",
                  "hybrid with links", "hybrid")


def report_columns(tuning: dict, held: dict | None, replicated: dict | None = None) -> dict:
    """recall@100 +- SE of the tuning marketplaces (pooled) beside the held-out one and its
    replications (pooled), and the paired sign test of the hybrid with learned links
    against the hybrid without."""
    sets = ([("tuning", tuning)] + ([("held-out", held)] if held else [])
            + ([("replications", replicated)] if replicated else []))
    t = Table(title="recall@100 ± SE: tuning marketplaces (pooled) | held-out marketplace | its replications "
                    "(pooled); weights frozen from tuning")
    t.add_column("retrieval")
    for name, r in sets:
        for kind in KINDS:
            t.add_column(f"{name}: {PLURAL[kind]} (n={r['targets'].get(kind, 0)})", justify="right")
    for m in COLUMN_METHODS:
        t.add_row(m, *(f"{p:.3f} ± {se:.3f}" for _, r in sets for kind in KINDS
                       for p, se, _ in [recall_se(r, m, kind)]))
    console.print(t)
    t = Table(title="hybrid with learned links (tuned among link weights > 0) vs without (link weight 0), paired "
                    "@100: targets only the one with links finds / only the one without finds, two-sided sign test")
    t.add_column("marketplace")
    for kind in KINDS:
        t.add_column(kind, justify="right")
    tests = {}
    for name, r in sets:
        cells = []
        for kind in KINDS:
            wins, losses = r["links_paired"][f"{kind}|100"]
            tests[f"{name}|{kind}"] = {"only_with_links": wins, "only_without": losses, "p": sign_test(wins, losses)}
            cells.append(paired_cell(wins, losses))
        t.add_row(name, *cells)
    console.print(t)
    return tests


def report(r: dict, command: str, title: str = "") -> None:
    ks = r["ks"]
    seeds = f", seeds {', '.join(map(str, r['seeds']))} pooled" if "seeds" in r else ""
    t = Table(title=f"{title}Held-out recall on simulated days {r['train_days']}..{r['config']['days'] - 1}{seeds} "
                    f"({r['targets'].get('apply', 0)} applies, {r['targets'].get('hire', 0)} hires; "
                    f"links from {r['train_hires']} training hires and {r['train_applies']} applies, then online)")
    t.add_column("retrieval")
    for kind in KINDS:
        for k in ks:
            t.add_column(f"{kind} recall@{k}", justify="right")
    t.add_column("qualified share of top 100", justify="right")
    best = {(kind, k): max(r["recall"][f"{m}|{kind}|{k}"] for m in SINGLE) for kind in KINDS for k in ks}
    for m in METHODS:
        cells = []
        for kind in KINDS:
            for k in ks:
                v = r["recall"][f"{m}|{kind}|{k}"]
                beats = m.startswith("hybrid") and v > best[(kind, k)]
                cells.append(f"[{'green' if beats else 'red' if m.startswith('hybrid') else 'white'}]{v:.3f}[/]")
        cells.append(f"{r['qualified_share_top100'][m]:.3f}")
        t.add_row(m, *cells)
    console.print(t)
    t = Table(title="hybrid vs each method alone, paired: targets only the hybrid finds / only the other finds")
    t.add_column("vs")
    for kind in KINDS:
        for k in ks:
            t.add_column(f"{kind} @{k}", justify="right")
    for m in PAIRED:
        t.add_row(m, *(paired_cell(*r["paired"][f"{m}|{kind}|{k}"]) for kind in KINDS for k in ks))
    console.print(t)
    console.print(f"dense column: {r['dense']}" + (", retrained on every training day once the weights were chosen"
                                                   if r["dense"] == "plm4job" and r.get("refit") else ""))
    if r["config"].get("held_out"):
        console.print(f"fusion weights frozen from the tuning marketplaces: {r['tuned_weights']}; "
                      f"link arms: {r['link_arm_weights']}")
    else:
        console.print(f"fusion weights tuned on training days {r['train_days'] - r['val_days']}..{r['train_days'] - 1}"
                      f"{' of each seed' if seeds else ''}: {r['tuned_weights']}; link arms: {r['link_arm_weights']}")
    console.print(f"targets whose job had closed before its day ended (not retrievable): {r['targets_not_open']}")
    console.print(f"rerun: [bold]{command}[/]")


def frozen_weights(runs: list[dict]) -> dict:
    """The fusion weights of the hybrid and of its link arms, chosen on the tuning
    marketplaces' validation hits pooled."""
    tuning = pooled_tuning(runs)
    return {"hybrid": choose_weights(tuning), **{arm: choose_weights(tuning, links=on) for arm, on in LINK_ARMS.items()}}


def run_held_out(args, frozen: dict, seed: int | None = None) -> dict:
    """The held-out marketplace (or its replication with `seed`) at its declared size and
    days, every choice frozen from the tuning marketplaces."""
    market = HELD_OUT_MARKETPLACE if seed is None else HELD_OUT_MARKETPLACE.replication(seed)
    cfg = market.config
    held_args = argparse.Namespace(**{**vars(args), "seed": cfg.seed, "days": cfg.days,
                                      "train_days": market.train_days})
    console.print(f"{market.label}: weights frozen from the tuning marketplaces {frozen}")
    return run(held_args, cfg, frozen_weights=frozen)


def replication_seeds(text: str) -> tuple[int, ...]:
    """`--replication-seeds`: only declared replications are held out (and labelled so)."""
    seeds = tuple(int(x) for x in text.split(","))
    unknown = [s for s in seeds if s not in REPLICATION_SEEDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{unknown} are not declared replications "
                                         f"(streams/simulator/held_out.py: {REPLICATION_SEEDS})")
    return seeds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="7,8,9", help="simulated marketplaces, comma-separated; several are pooled")
    p.add_argument("--members", type=int, default=5000)
    p.add_argument("--companies", type=int, default=200)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--days", type=int, default=35)
    p.add_argument("--train-days", type=int, default=21)
    p.add_argument("--val-days", type=int, default=7, help="last training days used to tune fusion weights")
    p.add_argument("--dense", choices=("plm4job", "hashed"), default="plm4job",
                   help="the dense column's embedder (see above)")
    p.add_argument("--encoder-steps", type=int, default=150)
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="evaluate with the encoder trained before the tuning days, not retrained on all training days")
    p.add_argument("--dim", type=int, default=64, help="hashed embedder's dimension")
    p.add_argument("--min-support", type=int, default=2)
    p.add_argument("--apply-window-days", type=float, default=EngineConfig().link_apply_window_days,
                   help="days (event time) an apply teaches links, as the serving engine's; 0: for ever")
    p.add_argument("--ks", default="100,500")
    p.add_argument("--quick", action="store_true")
    defaults = MarketplaceConfig()
    p.add_argument("--career-move-share", type=float, default=defaults.career_move_share,
                   help="tuning marketplaces' share of applies and hires along career paths (0: none)")
    p.add_argument("--community-strength", type=float, default=defaults.community_strength,
                   help="tuning marketplaces' latent community strength (0: none)")
    p.add_argument("--no-held-out", dest="held_out", action="store_false",
                   help="skip the held-out marketplace's column (streams/simulator/held_out.py)")
    p.add_argument("--no-replications", dest="replications", action="store_false",
                   help="skip the held-out configuration's replications (other seeds, pooled in a column)")
    p.add_argument("--replication-seeds", type=replication_seeds, default=REPLICATION_SEEDS,
                   help="which of the declared replications to run, comma-separated (default: all of "
                        f"{','.join(map(str, REPLICATION_SEEDS))})")
    p.add_argument("--out", default="bench/out/retrieval_quality.json")
    args = p.parse_args()
    if args.quick:
        args.members, args.jobs, args.companies, args.days, args.train_days, args.val_days = 1500, 2000, 80, 21, 14, 5
        args.encoder_steps = min(args.encoder_steps, 40)
    command = ".venv/bin/python " + " ".join(sys.argv)
    runs = []
    for seed in (int(x) for x in args.seeds.split(",")):
        args.seed = seed
        runs.append(run(args))
    r = pool(runs)
    frozen = frozen_weights(runs)
    held = run_held_out(args, frozen) if args.held_out else None
    replicas = ([run_held_out(args, frozen, seed) for seed in args.replication_seeds]
                if args.held_out and args.replications else [])
    replicated = pool(replicas) if replicas else None
    if len(runs) > 1:
        report_seeds(runs)
    report(r, command, "Tuning marketplaces. ")
    if held:
        report(held, command, f"{HELD_OUT_MARKETPLACE.label}. ")
    if replicated:
        report(replicated, command, f"Held-out replications (seeds {', '.join(map(str, args.replication_seeds))}, "
                                    "pooled). ")
    tests = report_columns(r, held, replicated)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, **r, "held_out": held, "held_out_replications": replicated,
                               "links_sign_tests": tests}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
