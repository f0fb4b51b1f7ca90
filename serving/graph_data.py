"""The marketplace graph for the PLM4Job encoder, built from events.

`apply_graph_event(graph, event)` is the one update, used by training, evaluation and
(live) by whoever keeps the encoder's graph current next to the job index:

    member.upserted  -> member node        company.upserted -> company node
    job.posted/upd.  -> job node, linked to its company (posted_by)
    member.action    -> apply: member-job edge (other actions carry no edge)
    hire.confirmed   -> hired: member-job edge

`link_similar_members` adds the graph's third neighbour kind: each member is tied to
the few members whose profiles are most alike (same occupation, shared skills, same
city, near seniority). That is what gives a member with no applications yet a
neighbourhood: their look-alikes, and at the next hop the jobs those applied to.

`marketplace_split` replays a simulated marketplace in event-time order: applications
and hires before the cutoff day are the graph's edges and the training links; those
after it are held out. Entities (members, jobs, companies) join the graph whenever they
appear, since a job posted after the cutoff is still a candidate to retrieve.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable

from models.ego_embedder import add_company, add_job, add_member
from models.ego_graph import HeteroGraph, Link, node_key

EDGE_ACTIONS = {"apply": "apply"}  # member.action -> edge kind; views/clicks/saves add no edge


def apply_graph_event(graph: HeteroGraph, event) -> Link | None:
    """Update `graph` with one event; returns the member-job link it made, if any."""
    t = event.event_time.timestamp()
    p = event.payload
    kind = event.type
    if kind == "member.upserted":
        add_member(graph, p)
    elif kind == "company.upserted":
        add_company(graph, p)
    elif kind in ("job.posted", "job.updated"):
        add_job(graph, p, time=t)
    elif kind == "member.action":
        action = str(getattr(p.action, "value", p.action))
        if action in EDGE_ACTIONS:
            return _link(graph, p.member_id, p.job_id, EDGE_ACTIONS[action], t)
    elif kind == "hire.confirmed":
        return _link(graph, p.member_id, p.job_id, "hired", t)
    return None


_SENIORITY = ("intern", "entry", "mid", "senior", "lead", "director", "executive")


def _profile_similarity(a, b) -> float:
    sa, sb = set(a.skills), set(b.skills)
    jaccard = len(sa & sb) / max(1, len(sa | sb))
    same_city = 1.0 if a.location == b.location else 0.0
    ra, rb = (_SENIORITY.index(str(getattr(x.seniority, "value", x.seniority))) for x in (a, b))
    return jaccard + 0.5 * same_city - 0.1 * abs(ra - rb)


def link_similar_members(graph: HeteroGraph, profiles: dict[str, object], k: int = 3) -> int:
    """Tie each member to its k most similar members of the same occupation; returns edges added.

    `profiles` maps member id -> profile (title, occupation, skills, location, seniority).
    Members are compared only within an occupation, which keeps this near-linear.
    """
    by_occupation: dict[str, list[str]] = {}
    for member_id, p in profiles.items():
        by_occupation.setdefault(p.occupation or p.title, []).append(member_id)
    added = 0
    for ids in by_occupation.values():
        ids.sort()
        for a in ids:
            pa = profiles[a]
            others = sorted((b for b in ids if b != a), key=lambda b: (-_profile_similarity(pa, profiles[b]), b))
            for b in others[:k]:
                ka, kb = node_key("member", a), node_key("member", b)
                if ka in graph and kb in graph and kb not in graph.neighbours(ka):
                    graph.add_edge(ka, kb, "similar")
                    added += 1
    return added


def _link(graph: HeteroGraph, member_id: str, job_id: str, kind: str, t: float) -> Link | None:
    m, j = node_key("member", member_id), node_key("job", job_id)
    if m not in graph or j not in graph:
        return None  # an action on an entity we never saw: nothing to connect
    graph.add_edge(m, j, kind, t)
    return Link(m, j, kind, t)


@dataclass
class GraphSplit:
    """Train graph + links before the cutoff; held-out member-job pairs after it."""

    graph: HeteroGraph
    train_links: list[Link]
    heldout: list[tuple[str, str]]  # (member key, job key), new pairs only
    candidate_jobs: list[str]  # job keys open at some point after the cutoff
    seen: dict[str, set[str]] = field(default_factory=dict)  # member key -> job keys linked before
    stats: dict = field(default_factory=dict)

    @property
    def heldout_members(self) -> list[str]:
        return sorted({m for m, _ in self.heldout})


def split_events(events: Iterable, cutoff_time: float, similar_members: int = 3) -> GraphSplit:
    """Replay events (in event-time order) into a train graph and held-out pairs.

    Profiles, not actions, decide member similarity, so similar-member edges use every
    profile seen (including members who joined after the cutoff).
    """
    graph = HeteroGraph()
    profiles: dict[str, object] = {}
    train: list[Link] = []
    later: list[Link] = []
    closed_at: dict[str, float] = {}
    n_events = 0
    for event in events:
        n_events += 1
        t = event.event_time.timestamp()
        if event.type == "member.upserted":
            profiles[event.payload.member_id] = event.payload
        if event.type == "job.closed":
            closed_at[node_key("job", event.payload.job_id)] = t
            continue
        if t < cutoff_time:
            link = apply_graph_event(graph, event)
            if link is not None:
                train.append(link)
        elif event.type in ("member.action", "hire.confirmed"):
            p = event.payload
            action = "hired" if event.type == "hire.confirmed" else str(getattr(p.action, "value", p.action))
            if action in ("apply", "hired"):
                m, j = node_key("member", p.member_id), node_key("job", p.job_id)
                if m in graph and j in graph:
                    later.append(Link(m, j, action, t))
        else:
            apply_graph_event(graph, event)  # entities keep arriving after the cutoff

    n_similar = link_similar_members(graph, profiles, similar_members) if similar_members else 0
    seen: dict[str, set[str]] = {}
    for link in train:
        seen.setdefault(link.member_id, set()).add(link.job_id)
    heldout = sorted({(l.member_id, l.job_id) for l in later if l.job_id not in seen.get(l.member_id, ())})
    candidates = sorted(
        k for k, n in graph.nodes.items()
        if n.type == "job" and closed_at.get(k, float("inf")) >= cutoff_time
    )
    in_candidates = set(candidates)
    candidates += sorted({j for _, j in heldout if j not in in_candidates})
    cold = sum(1 for m in {m for m, _ in heldout} if m not in seen)
    stats = {
        "events": n_events,
        "nodes": len(graph),
        "members": sum(1 for n in graph.nodes.values() if n.type == "member"),
        "jobs": sum(1 for n in graph.nodes.values() if n.type == "job"),
        "companies": sum(1 for n in graph.nodes.values() if n.type == "company"),
        "train_links": len(train),
        "train_applies": sum(1 for l in train if l.kind == "apply"),
        "train_hires": sum(1 for l in train if l.kind == "hired"),
        "similar_member_edges": n_similar,
        "heldout_pairs": len(heldout),
        "heldout_members": len({m for m, _ in heldout}),
        "heldout_cold_members": cold,
        "candidate_jobs": len(candidates),
    }
    return GraphSplit(graph, train, heldout, candidates, seen, stats)


def marketplace_split(
    seed: int = 7, n_members: int = 1000, n_companies: int = 100, n_jobs: int = 2000,
    days: int = 14, train_days: int = 10, similar_members: int = 3, config=None,
) -> GraphSplit:
    """Simulate a marketplace and split it at day `train_days`. `config`: a whole
    MarketplaceConfig instead (its seed, sizes, days and signals win over the others)."""
    from streams.simulator import Marketplace, MarketplaceConfig

    if config is not None:
        seed, n_members, n_companies, n_jobs, days = (config.seed, config.n_members, config.n_companies,
                                                      config.n_jobs, config.days)
    if not 0 < train_days < days:
        raise ValueError(f"train_days must be within (0, days={days}), got {train_days}")
    cfg = config or MarketplaceConfig(seed=seed, n_members=n_members, n_companies=n_companies, n_jobs=n_jobs,
                                      days=days)
    market = Marketplace(cfg)
    cutoff = (cfg.start + timedelta(days=train_days)).timestamp()
    split = split_events(market.events(), cutoff, similar_members)
    split.stats.update(seed=seed, simulated_days=days, train_days=train_days,
                       config=dict(n_members=n_members, n_companies=n_companies, n_jobs=n_jobs,
                                   career_move_share=cfg.career_move_share,
                                   community_strength=cfg.community_strength, held_out=cfg.held_out))
    return split
