"""Does simulated behaviour follow the hidden truth? The figures behind the tests.

Prints, for one seeded run: click and apply rates per view by hidden-affinity bucket
(the reference is the bottom bucket, so the ratio column is the lift), hire rates of
qualified vs unqualified applications, and dismiss reasons with the share of each
that names a real mismatch (checked against the truth, not the generator's code) and
how often the member later applied to, or was hired into, the very job they dismissed
(what a rule that hides dismissed jobs can never retrieve).

Then the wishes stated only in free text (streams/simulator/wishes.py): for the
starting members who hold one, click and apply rates on jobs that match the wish vs
all others, beside the same members' rates in a second run of the same seed with
`text_preference_share=0` (their wish out of the truth): the lift that only reading
the about text can explain. Last, how far a bag of words reads each wish: the AUC of
TF-IDF cosine(wish sentence, job title + description) for telling the starting jobs
that match the wish from the rest, averaged over members, for wishes written in the
matching jobs' words ("literal") and without them (0.5: chance; below: misread, as
negations are).

    .venv/bin/python bench/simulator_truth.py [--members 1000] [--days 14] [--seed 7] [--text-share 0.35]
"""
from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from streams.schemas import ActionType, DismissReason, Seniority
from streams.simulator import Marketplace, MarketplaceConfig, Truth
from models.cpu import cpu_name

EDGES = (0.0, 0.05, 0.15, 0.3, 0.5, 1.01)
WISH_KINDS = ("arrangement", "lead", "field")


def wish_behaviour(sim: Marketplace, judge: Truth, members: set[str]) -> Counter:
    """(wish kind, job matches it, action) -> count over `sim`'s run, for `members`
    whose wish (as `judge` holds it) is not empty."""
    counts: Counter = Counter()
    for ev in sim.events():
        if ev.type != "member.action" or not ev.payload.job_id or ev.payload.member_id not in members:
            continue
        prefs = judge.hidden_preferences(ev.payload.member_id)
        match = sim.truth.wish_match(ev.payload.member_id, ev.payload.job_id, prefs=prefs)
        counts[prefs.wish, match, ev.payload.action] += 1
    return counts


def bag_of_words_auc(sim: Marketplace, wishers: set[str]) -> dict[tuple[str, bool], list[float]]:
    """(wish kind, literal) -> per-member AUC of TF-IDF cosine(wish sentence, job text)
    at telling the starting jobs that match the wish from the rest."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import roc_auc_score

    jobs = list(sim.jobs.values())
    vectorizer = TfidfVectorizer().fit(
        [f"{j.title} {j.description}" for j in jobs] + [m.about for m in sim.members.values()])
    job_vectors = vectorizer.transform([f"{j.title} {j.description}" for j in jobs])
    aucs: dict[tuple[str, bool], list[float]] = {}
    for mid in sorted(wishers):
        wish = sim.truth.preferences(mid)
        match = np.array([sim.truth.wish_match(mid, j.job_id) for j in jobs])
        if match.all() or not match.any():
            continue
        cosine = (job_vectors @ vectorizer.transform([wish["wish_text"]]).T).toarray().ravel()
        aucs.setdefault((wish["wish"], wish["wish_literal"]), []).append(roc_auc_score(match, cosine))
    return aucs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--text-share", type=float, default=MarketplaceConfig.text_preference_share,
                    help="MarketplaceConfig.text_preference_share: members with a text-stated wish")
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")
    config = MarketplaceConfig(
        seed=args.seed, n_members=args.members, n_companies=max(5, args.members // 10),
        n_jobs=2 * args.members, days=args.days, text_preference_share=args.text_share)
    sim = Marketplace(config)
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
    console.print(f"seed {args.seed}: {n_events:,} events, {args.members:,} members, {args.days} days, "
                  f"text_preference_share {args.text_share}")
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

    if args.text_share > 0:
        print_wishes(console, sim, config)
    else:
        console.print("no text-stated wishes at --text-share 0")


def print_wishes(console: Console, sim: Marketplace, config: MarketplaceConfig) -> None:
    wishers = {mid for mid in sim.members if sim.truth.hidden_preferences(mid).wish}
    unliteral = Counter(sim.truth.hidden_preferences(mid).wish for mid in wishers
                        if not sim.truth.preferences(mid)["wish_literal"])
    members = Counter(sim.truth.hidden_preferences(mid).wish for mid in wishers)
    with_wish = wish_behaviour(sim, sim.truth, wishers)
    without = wish_behaviour(Marketplace(dataclasses.replace(config, text_preference_share=0.0)),
                             sim.truth, wishers)
    t = Table(title=f"wishes stated only in the about text: {len(wishers):,} of {len(sim.members):,} starting "
                    "members; rates per view on jobs matching the wish / the rest",
              caption="unliteral: the wish is written without any word the matching jobs are described "
                      "with; share 0: the same members in a run with no wishes in the truth; BoW AUC: "
                      "TF-IDF cosine(wish, job text) telling matching starting jobs from the rest, "
                      "mean over members (0.5 chance)")
    for col in ("wish", "members", "unliteral", "views", "click rate", "apply rate", "apply lift",
                "lift, share 0", "BoW AUC literal/unliteral"):
        t.add_column(col, justify="right")

    def rate(c: Counter, kinds, match: bool, action: ActionType) -> float:
        views = sum(c[k, match, ActionType.VIEW] for k in kinds)
        return sum(c[k, match, action] for k in kinds) / max(1, views)

    def lift(c: Counter, kinds) -> str:
        rest = rate(c, kinds, False, ActionType.APPLY)
        return f"{rate(c, kinds, True, ActionType.APPLY) / rest:.1f}x" if rest else "inf (rest 0)"

    aucs = bag_of_words_auc(sim, wishers)

    def bow(kinds) -> str:
        pooled = [[auc for k in kinds for auc in aucs.get((k, lit), [])] for lit in (True, False)]
        return "/".join(f"{np.mean(v):.2f}" if v else "-" for v in pooled)

    for label, kinds in [*((k, (k,)) for k in WISH_KINDS), ("all", WISH_KINDS)]:
        n = sum(members[k] for k in kinds)
        views = [sum(with_wish[k, m, ActionType.VIEW] for k in kinds) for m in (True, False)]
        t.add_row(label, f"{n:,}", f"{sum(unliteral[k] for k in kinds) / max(1, n):.0%}",
                  f"{views[0]:,}/{views[1]:,}",
                  "/".join(f"{rate(with_wish, kinds, m, ActionType.CLICK):.3f}" for m in (True, False)),
                  "/".join(f"{rate(with_wish, kinds, m, ActionType.APPLY):.4f}" for m in (True, False)),
                  lift(with_wish, kinds), lift(without, kinds), bow(kinds))
    Console(width=max(console.width, 140)).print(t)  # eight columns, most of them pairs


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
