"""Does simulated behaviour follow the hidden truth? The figures behind the tests.

Prints, for one seeded run: click and apply rates per view by hidden-affinity bucket
(the reference is the bottom bucket, so the ratio column is the lift), hire rates of
qualified vs unqualified applications, and dismiss reasons with the share of each
that names a real mismatch (checked against the truth, not the generator's code) and
how often the member later applied to, or was hired into, the very job they dismissed
(what a rule that hides dismissed jobs can never retrieve).

    .venv/bin/python bench/simulator_truth.py [--members 1000] [--days 14] [--seed 7]
"""
from __future__ import annotations

import argparse
from collections import Counter

from rich.console import Console
from rich.table import Table

from streams.schemas import ActionType, DismissReason, Seniority
from streams.simulator import Marketplace, MarketplaceConfig

EDGES = (0.0, 0.05, 0.15, 0.3, 0.5, 1.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sim = Marketplace(MarketplaceConfig(
        seed=args.seed, n_members=args.members, n_companies=max(5, args.members // 10),
        n_jobs=2 * args.members, days=args.days))
    truth = sim.truth
    rank = {s: i for i, s in enumerate(Seniority)}
    by_action: dict[ActionType, Counter] = {a: Counter() for a in ActionType}
    applications, hires, jobs = set(), set(), {}
    dismisses, truthful = Counter(), Counter()
    dismissed: dict[tuple[str, str], DismissReason] = {}  # (member, job) -> first reason
    applied_after, hired_after = Counter(), Counter()
    n_events = 0
    for ev in sim.events():
        n_events += 1
        if ev.type == "job.posted":
            jobs[ev.payload.job_id] = ev.payload
        elif ev.type == "hire.confirmed":
            hires.add((ev.payload.member_id, ev.payload.job_id))
            if (ev.payload.member_id, ev.payload.job_id) in dismissed:
                hired_after[dismissed[ev.payload.member_id, ev.payload.job_id]] += 1
        elif ev.type == "member.action" and ev.payload.job_id:
            p = ev.payload
            a = truth.affinity(p.member_id, p.job_id)
            by_action[p.action][next(i for i in range(len(EDGES) - 1) if a < EDGES[i + 1])] += 1
            if p.action is ActionType.APPLY:
                applications.add((p.member_id, p.job_id))
                if (p.member_id, p.job_id) in dismissed:
                    applied_after[dismissed[p.member_id, p.job_id]] += 1
            if p.action is ActionType.DISMISS:
                wants, job = truth.preferences(p.member_id), jobs[p.job_id]
                dismisses[p.reason] += 1
                dismissed.setdefault((p.member_id, p.job_id), p.reason)
                truthful[p.reason] += {
                    DismissReason.TOO_SENIOR: rank[job.seniority] > rank[wants["target_seniority"]],
                    DismissReason.TOO_JUNIOR: rank[job.seniority] < rank[wants["target_seniority"]],
                    DismissReason.WRONG_LOCATION: job.location not in wants["locations"],
                    DismissReason.NOT_MY_FIELD: job.occupation not in wants["occupations"],
                    DismissReason.COMPANY: job.company_id in wants["disliked_companies"],
                }.get(p.reason, True)

    console = Console()
    console.print(f"seed {args.seed}: {n_events:,} events, {args.members:,} members, {args.days} days")
    views = by_action[ActionType.VIEW]
    base = by_action[ActionType.APPLY][0] / max(1, views[0])
    t = Table(title="behaviour by hidden affinity (per view)")
    for col in ("affinity", "views", "click rate", "apply rate", "apply lift vs bottom"):
        t.add_column(col, justify="right")
    for b in range(len(EDGES) - 1):
        v = max(1, views[b])
        apply_rate = by_action[ActionType.APPLY][b] / v
        t.add_row(f"[{EDGES[b]:.2f}, {min(1, EDGES[b + 1]):.2f})", f"{views[b]:,}",
                  f"{by_action[ActionType.CLICK][b] / v:.3f}", f"{apply_rate:.4f}",
                  f"{apply_rate / base:.1f}x" if base else "-")
    console.print(t)

    t = Table(title="hires among applications")
    for col in ("applicant", "applications", "hired", "hire rate"):
        t.add_column(col, justify="right")
    for label, want in (("qualified", True), ("not qualified", False)):
        pairs = [p for p in applications if truth.qualified(*p) is want]
        hired = sum(p in hires for p in pairs)
        t.add_row(label, f"{len(pairs):,}", f"{hired:,}", f"{hired / max(1, len(pairs)):.3f}")
    console.print(t)

    t = Table(title=f"dismiss reasons ({len(applications):,} applications, {len(hires):,} hires in all)")
    for col in ("reason", "count", "names a real mismatch", "member later applied to that job",
                "member later hired into it"):
        t.add_column(col, justify="right")
    for reason, n in dismisses.most_common():
        t.add_row(reason.value, f"{n:,}", f"{truthful[reason] / n:.1%}", f"{applied_after[reason]:,}",
                  f"{hired_after[reason]:,}")
    n_apps, n_hires = sum(applied_after.values()), sum(hired_after.values())
    t.add_row("all", f"{sum(dismisses.values()):,}", "",
              f"{n_apps:,} ({n_apps / max(1, len(applications)):.1%} of applications)",
              f"{n_hires:,} ({n_hires / max(1, len(hires)):.1%} of hires)")
    console.print(t)


if __name__ == "__main__":
    main()
