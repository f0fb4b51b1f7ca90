"""Ranker quality on the simulator's held-out days, per task, against the baselines
360Brew replaces: popularity, term match (BM25) and per-task logistic regression on
hand-engineered features. Cold-start members (<3 past interactions besides views)
are reported separately. The ranker is also scored with each task's held-out
instruction phrasing (zero-shot wording).

    python bench/ranker_quality.py --ranker artifacts/ranker-student
    # train first:  hirestream train ranker --model student --budget-minutes 18 --members 500 --seed 0

Writes bench/out/ranker_quality.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.metrics import auc, ndcg_at_k  # noqa: E402
from serving.ranker_pipeline import PromptCache, groups_of, score_examples, simulated_split  # noqa: E402
from serving.training_examples import RANKING_TASKS, Example  # noqa: E402
from models.verbalizer import TASKS  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
POSITIVE_ACTION = {"click": "click", "save": "save", "apply": "apply", "dismiss": "dismiss",
                   "search_relevance": "click", "hire": "apply"}
ENGAGED = ("click", "save", "apply", "hired")
_WORD = re.compile(r"[a-z0-9+#]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def job_text(ex: Example) -> str:
    j = ex.job
    return " ".join([j.title, j.occupation, " ".join(j.skills), j.location, j.company_name])


def member_text(ex: Example) -> str:
    p = ex.profile
    past = [f"{it.job.title} {' '.join(it.job.skills)}" for it in ex.history if it.job and it.action in ENGAGED]
    searches = [it.query or "" for it in ex.history if it.action == "search"]
    return " ".join([p.title, p.occupation, " ".join(p.skills), p.about, *past, *searches, ex.query or ""])


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.avgdl = np.mean([len(d) for d in docs]) or 1.0
        df = Counter(t for d in docs for t in set(d))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def score(self, query: list[str], doc: list[str]) -> float:
        tf = Counter(doc)
        q = set(query)
        norm = self.k1 * (1 - self.b + self.b * len(doc) / self.avgdl)
        return sum(self.idf.get(t, 0.0) * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in q if t in tf)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def features(ex: Example, bm25: BM25) -> list[float]:
    """What a feature-engineering team would hand a logistic regression."""
    p, j = ex.profile, ex.job
    ms, js = {s.lower() for s in p.skills}, {s.lower() for s in j.skills}
    engaged = [it.job for it in ex.history if it.job and it.action in ENGAGED]
    dismissed = [it.job for it in ex.history if it.job and it.action == "dismiss"]
    title_words = set(words(j.title))
    seniority = ["intern", "entry", "mid", "senior", "lead", "director", "executive"]
    gap = seniority.index(j.seniority.value) - seniority.index(p.seniority.value)
    mc, jc = ex.member_counts, ex.job_counts
    views = jc.get("view", 0)
    return [
        len(ms & js), _jaccard(ms, js), len(ms & js) / max(1, len(js)),
        gap, abs(gap), float(gap > 0), float(gap < 0),
        float(p.location == j.location), float(any(e.location == j.location for e in engaged)),
        _jaccard(set(words(p.title)), title_words),
        max((_jaccard(set(words(e.title)), title_words) for e in engaged), default=0.0),
        max((_jaccard(set(words(e.title)), title_words) for e in dismissed), default=0.0),
        float(bool(p.occupation) and p.occupation == j.occupation),
        float(any(e.company == j.company_name for e in engaged)),
        float(any(e.company == j.company_name for e in dismissed)),
        float(j.promoted), p.years_experience,
        *(math.log1p(mc.get(a, 0)) for a in ("view", "click", "save", "apply", "dismiss", "search", "hired")),
        *(math.log1p(jc.get(a, 0)) for a in ("view", "click", "save", "apply", "dismiss")),
        *((jc.get(a, 0) + 0.1) / (views + 1) for a in ("click", "apply", "dismiss")),
        _jaccard(set(words(ex.query or "")), set(words(job_text(ex)))),
        bm25.score(words(member_text(ex)), words(job_text(ex))),
    ]


def popularity(ex: Example) -> float:
    jc = ex.job_counts
    return jc.get(POSITIVE_ACTION[ex.task], 0) + 0.01 * jc.get("view", 0)


def ndcg10(examples: list[Example], s: np.ndarray) -> float:
    """Mean NDCG@10 over member-days with a positive and at least two candidates."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[(ex.member_id, int(ex.request_time // 86400))].append(i)
    values = [ndcg_at_k(s[idx], [examples[i].label for i in idx], 10)
              for idx in groups.values() if len(idx) >= 2 and any(examples[i].label for i in idx)]
    return float(np.mean(values)) if values else float("nan")


def sample_groups(examples: list[Example], max_groups: int | None, seed: int) -> list[Example]:
    """The same (slate, task) groups for every method; all of them when max_groups is None."""
    by_task: dict[str, list] = defaultdict(list)
    for key, group in groups_of(examples).items():
        by_task[key[1]].append(group)
    rng = random.Random(seed)
    out = []
    for task in sorted(by_task):
        groups = sorted(by_task[task], key=lambda g: g[0].slate_id)
        if max_groups and len(groups) > max_groups:
            groups = rng.sample(groups, max_groups)
        out.extend(ex for g in groups for ex in g)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranker", action="append", default=[], help="checkpoint folder (repeatable)")
    ap.add_argument("--members", type=int, default=500)
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--seed", type=int, default=0, help="simulator seed (the one the ranker was trained with)")
    ap.add_argument("--max-groups", type=int, default=None, help="evaluate at most this many slates per task")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-zero-shot", action="store_true")
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.ranker import Ranker

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    split = simulated_split(n_members=args.members, days=args.days, seed=args.seed)
    held = sample_groups(split.held_out, args.max_groups, args.seed)
    print(split.description)

    jobs = {ex.job.job_id: ex for ex in split.train + split.held_out}
    bm25 = BM25([words(job_text(ex)) for ex in jobs.values()])
    scores: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # method -> task -> scores
    by_task = {t: [ex for ex in held if ex.task == t] for t in TASKS}
    train_by_task = {t: [ex for ex in split.train if ex.task == t] for t in TASKS}
    for task, exs in by_task.items():
        if not exs:
            continue
        scores["popularity"][task] = np.array([popularity(ex) for ex in exs])
        scores["BM25 term match"][task] = np.array([bm25.score(words(member_text(ex)), words(job_text(ex)))
                                                    for ex in exs])
        tr = train_by_task[task]
        y = np.array([ex.label for ex in tr])
        if 0 < y.sum() < len(y):
            lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
            lr.fit(np.array([features(ex, bm25) for ex in tr]), y)
            scores["feature LR"][task] = lr.predict_proba(np.array([features(ex, bm25) for ex in exs]))[:, 1]

    for path in args.ranker:
        ranker = Ranker.load(path)
        name = Path(path).name
        prompts = PromptCache(ranker)
        t = time.perf_counter()
        s = score_examples(ranker, held, prompts, phrasing=0)
        rate = len(held) / (time.perf_counter() - t)
        for task, exs in by_task.items():
            idx = [i for i, ex in enumerate(held) if ex.task == task]
            scores[name][task] = s[idx]
        print(f"{name}: {rate:.1f} candidates/s")
        if not args.no_zero_shot:
            s = score_examples(ranker, held, prompts, phrasing=-1)
            for task in by_task:
                idx = [i for i, ex in enumerate(held) if ex.task == task]
                scores[f"{name} (held-out phrasing)"][task] = s[idx]

    results = []
    for method, per_task in scores.items():
        for task, s in per_task.items():
            exs = by_task[task]
            y = np.array([ex.label for ex in exs])
            cold = np.array([ex.is_cold_start for ex in exs])
            results.append(dict(
                method=method, task=task, n=len(y), positives=int(y.sum()),
                auc=auc(s, y), auc_cold=auc(s[cold], y[cold]), n_cold=int(cold.sum()),
                positives_cold=int(y[cold].sum()),
                ndcg10=ndcg10(exs, s) if task in RANKING_TASKS else float("nan"),
            ))

    console = Console(width=160)
    table = Table(title=f"Ranker quality, held-out days ({split.description})")
    for col in ("task", "method", "n (pos)", "AUC", "NDCG@10", "cold n (pos)", "cold AUC"):
        table.add_column(col, justify="left" if col in ("task", "method") else "right")
    fmt = lambda v: "—" if v != v else f"{v:.3f}"  # noqa: E731  (NaN -> dash)
    for task in TASKS:
        for r in (r for r in results if r["task"] == task):
            table.add_row(task, r["method"], f"{r['n']} ({r['positives']})", fmt(r["auc"]), fmt(r["ndcg10"]),
                          f"{r['n_cold']} ({r['positives_cold']})", fmt(r["auc_cold"]))
        table.add_section()
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ranker_quality.json").write_text(json.dumps(
        {"split": split.description, "rankers": args.ranker, "max_groups": args.max_groups, "results": results},
        indent=2))
    md = ["| task | method | n (pos) | AUC | NDCG@10 | cold n (pos) | cold AUC |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['task']} | {r['method']} | {r['n']} ({r['positives']}) | {fmt(r['auc'])} | {fmt(r['ndcg10'])} | "
           f"{r['n_cold']} ({r['positives_cold']}) | {fmt(r['auc_cold'])} |" for r in results]
    (OUT / "ranker_quality.md").write_text("\n".join(md) + "\n")
    print(f"wrote {OUT / 'ranker_quality.md'} in {time.perf_counter() - t0:.0f} s; rerun: "
          f"python bench/ranker_quality.py {' '.join('--ranker ' + r for r in args.ranker)} "
          f"--members {args.members} --days {args.days} --seed {args.seed}")


if __name__ == "__main__":
    main()
