"""Ranker quality on the held-out days of several simulated marketplaces, pooled, per
task, with standard errors, against the baselines 360Brew replaces: the simulator's
hidden affinity (the ceiling), popularity, term match (BM25), logistic regression on
hand-engineered features, and the same LR with the member's and job's free text
(TF-IDF): the fair baseline for a model that reads text.

Protocol (printed before the results):
- Marketplaces: `simulated_split(members, days, seed)` for each of `--seeds`. With a
  ranker, members, days and seeds default to what its `ranker.json` says it was
  trained on (`sim_members`, `sim_days`, `sim_seeds` or `seed`); a command line that
  contradicts them is refused (`--allow-mismatch` turns that into a loud WARNING in
  the output), and held-out days that overlap a ranker's training days always are.
  The same goes for the marketplace's signals: the share of text-stated wishes
  (`sim_text_share`) and the graph signals (`sim_career_move_share`,
  `sim_community_strength`); a checkpoint whose ranker.json predates the graph signals
  was trained without them (0), so it is refused on a marketplace with them.
- Held out: every example of the last `HELD_OUT_DAYS` days (no group cap unless
  `--max-groups`). Baselines are fitted per marketplace on its own training days;
  scores of all marketplaces are pooled for each AUC.
- AUC standard errors: DeLong, clustered by member (Obuchowski 1997), since one
  member's candidates are not independent; differences to the LR + text use the
  paired covariance, so "better"/"worse" means by more than one SE of the difference,
  and anything closer is a "tie".
- Segments: all, cold-start (fewer than 3 past interactions besides views), warm.
- The ranker: its training phrasing (0), the held-out phrasing (-1) and the held-out
  task formulation ("interest": will the member click, save or apply? on view slates),
  scored through `score_examples(..., ask="interest")` where the pipeline has `ask`.
  Retention = (AUC - 0.5) of the held-out phrasing over the ranker's, delta-method SE.
- The held-out marketplace (streams/simulator/held_out.py; `--no-held-out-marketplace`
  skips it): its own table, nothing chosen on it. The LRs fit their coefficients on its
  training days with the regularization the tuning marketplaces chose (their median);
  the rankers, trained elsewhere, score it as they are: occupations, signal mix and size
  they never saw. `--held-out-slates` random slates per task of its scored days.
- Learning curve: AUC against labelled candidates of the task seen in training, for
  the LR + text on growing prefixes of its training days, and for each ranker from
  the checkpoints its training saved along the way (`train ranker --snapshots`:
  `<ranker>/snapshots/`), each scored on the whole held-out set like the ranker
  itself; without them, from the trainer's 120-slate probes (`learning_curve.json`).
- What more data would buy: per task, a line through the ranker's curve points,
  AUC = a + b ln(candidates) (weighted by 1/SE^2; the points share a held-out set and
  nest, so the slope's SE is optimistic), and where it would meet the LR + text's AUC:
  candidates needed and the training time at the run's own rate. Chosen before seeing
  a curve: a line in log data is the usual shape of such curves over a decade or two,
  and a slope within 2 SE of 0 is reported as no measurable gain.

    python bench/ranker_quality.py --ranker artifacts/ranker-student
    python bench/ranker_quality.py --members 150 --days 10 --seeds 1,2   # baselines only

Writes bench/out/ranker_quality.{json,md} and bench/out/ranker_learning_curve.png.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import re
import shlex
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serving.evaluation.metrics import auc, auc_covariance, auc_se, excess_auc_ratio, ndcg_at_k  # noqa: E402
from serving.training.ranker_pipeline import (  # noqa: E402
    HELD_OUT_DAYS, SNAPSHOTS, PromptCache, groups_of, score_examples, simulated_split, split_marketplace,
)
from streams.simulator.held_out import HELD_OUT_MARKETPLACE, refuse_tuning  # noqa: E402
from serving.training.training_examples import ENGAGED as ENGAGED_TASKS  # noqa: E402
from serving.training.training_examples import RANKING_TASKS, Example  # noqa: E402
from models.verbalizer import TASKS  # noqa: E402
from models.cpu import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
HELD_OUT_TASK = "interest"  # the formulation no ranker trains on: view -> click, save or apply
EVAL_TASKS = (*TASKS, HELD_OUT_TASK)
CURVE_TASKS = ("click", "apply", "save", "search_relevance", "dismiss")
CURVE_SIZES = (1_000, 3_000, 10_000, 30_000)
SEGMENTS = ("all", "cold", "warm")
C_GRID = (0.03, 0.1, 0.3, 1.0)  # LR inverse regularization, chosen per task on a time-split validation
REFERENCE = "feature LR + text"
CEILING = "hidden affinity (ceiling)"
POSITIVE_ACTION = {"click": "click", "save": "save", "apply": "apply", "dismiss": "dismiss",
                   "search_relevance": "click", "hire": "apply"}
ENGAGED = ("click", "save", "apply", "hired")
_WORD = re.compile(r"[a-z0-9+#]+")


# ---- hand features (what a feature-engineering team would hand an LR) ----------------


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
        norm = self.k1 * (1 - self.b + self.b * len(doc) / self.avgdl)
        return sum(self.idf.get(t, 0.0) * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in set(query) if t in tf)


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def features(ex: Example, bm25: BM25) -> list[float]:
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


# ---- free text for the LR + text baseline ----------------------------------------------


def member_free_text(ex: Example) -> str:
    """What the member wrote or typed: title, skills, about, every search query."""
    p = ex.profile
    searches = [it.query or "" for it in ex.history if it.action == "search"]
    return " ".join([p.title, " ".join(p.skills), p.about, *searches, ex.query or ""])


def member_intent_words(ex: Example) -> list[str]:
    """The words in which members state wishes (about text, queries): crossed with job titles."""
    searches = [it.query or "" for it in ex.history if it.action == "search"]
    return sorted(set(words(" ".join([ex.profile.about, *searches, ex.query or ""]))))


def job_free_text(ex: Example) -> str:
    j = ex.job
    return " ".join([j.title, " ".join(j.skills), j.description])


class TextFeatures:
    """Member and job free text as TF-IDF in one shared vocabulary, their word-by-word
    product (how strongly each word matches on both sides), and hashed (member intent
    word, job title word) pairs, so an LR can learn "management" x "manager" too.

    Member-only and job-only columns alone could not rank one member's candidates;
    the product and the pairs are what let a linear model match.
    """

    def __init__(self, max_features: int = 30_000, pair_buckets: int = 2 ** 18):
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

        self.tfidf = TfidfVectorizer(token_pattern=r"[a-z0-9+#]+", min_df=2, max_features=max_features,
                                     sublinear_tf=True, dtype=np.float32)
        self.pairs = HashingVectorizer(analyzer=lambda pairs: pairs, n_features=pair_buckets,
                                       alternate_sign=False, dtype=np.float32)

    def fit(self, examples: list[Example]) -> "TextFeatures":
        texts = {member_free_text(ex) for ex in examples} | {job_free_text(ex) for ex in examples}
        self.tfidf.fit(sorted(texts))
        return self

    def transform(self, examples: list[Example]):
        import scipy.sparse as sp

        members = self.tfidf.transform([member_free_text(ex) for ex in examples])
        jobs = self.tfidf.transform([job_free_text(ex) for ex in examples])
        pairs = self.pairs.transform([[f"{m}|{t}" for m in member_intent_words(ex) for t in words(ex.job.title)]
                                      for ex in examples])
        return sp.hstack([members, jobs, members.multiply(jobs), pairs], format="csr")


def impression_key(ex: Example) -> tuple:
    return ex.slate_id, ex.job.job_id, ex.query


@dataclass
class Design:
    """Feature rows of one marketplace's examples, built once per impression (the four
    view tasks of an impression share their features)."""

    hand: np.ndarray
    text: object  # scipy csr
    row: dict[tuple, int]

    @classmethod
    def build(cls, examples: list[Example], bm25: BM25, text: TextFeatures) -> "Design":
        unique = list({impression_key(ex): ex for ex in examples}.values())
        row = {impression_key(ex): i for i, ex in enumerate(unique)}
        hand = np.array([features(ex, bm25) for ex in unique], dtype=np.float64)
        return cls(hand, text.transform(unique), row)

    def rows(self, examples: list[Example]) -> np.ndarray:
        return np.array([self.row[impression_key(ex)] for ex in examples], dtype=np.int64)

    def used_columns(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.text.tocsc().indptr))

    def keep_columns(self, columns: np.ndarray) -> "Design":
        """Only the text columns training ever sets: a column the LR never saw carries no
        weight, and dropping it makes the fit fast (the hashed pairs are mostly empty)."""
        return replace(self, text=self.text[:, columns])


class FeatureLR:
    """Logistic regression on standardized hand features, optionally with the text columns."""

    def __init__(self, with_text: bool, c: float = 1.0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.with_text = with_text
        self.scaler = StandardScaler()
        self.lr = LogisticRegression(C=c, max_iter=2000)

    def _x(self, design: Design, idx: np.ndarray, fit: bool = False):
        import scipy.sparse as sp

        hand = self.scaler.fit_transform(design.hand[idx]) if fit else self.scaler.transform(design.hand[idx])
        return sp.hstack([sp.csr_matrix(hand), design.text[idx]], format="csr") if self.with_text else hand

    def fit(self, design: Design, idx: np.ndarray, y: np.ndarray) -> "FeatureLR":
        self.lr.fit(self._x(design, idx, fit=True), y)
        return self

    def predict(self, design: Design, idx: np.ndarray) -> np.ndarray:
        return self.lr.predict_proba(self._x(design, idx))[:, 1]


# ---- protocol: settings read from the checkpoints, checked against the command line -----


@dataclass
class TrainedOn:
    """The marketplaces a ranker checkpoint says it was trained on (its ranker.json)."""

    path: str
    members: int | None
    days: int | None
    seeds: list[int]
    held_out_days: int
    text_share: float | None = None
    # Graph signals (streams/simulator/careers.py, communities.py). A ranker.json
    # without them was written before they existed: trained on a marketplace without.
    career_move_share: float = 0.0
    community_strength: float = 0.0
    train_candidates: int | None = None  # what its training read: the learning curve's last point
    train_seconds: float | None = None

    @classmethod
    def read(cls, path: str) -> "TrainedOn":
        meta_path = Path(path) / "ranker.json"
        if not meta_path.exists():
            raise SystemExit(f"{path}: no ranker.json, so its training marketplaces cannot be checked")
        meta = json.loads(meta_path.read_text())
        seeds = meta.get("sim_seeds") or ([meta["seed"]] if "seed" in meta else [])
        return cls(path, meta.get("sim_members"), meta.get("sim_days"), [int(s) for s in seeds],
                   int(meta.get("sim_held_out_days", meta.get("held_out_days", HELD_OUT_DAYS))),
                   meta.get("sim_text_share"), float(meta.get("sim_career_move_share", 0.0)),
                   float(meta.get("sim_community_strength", 0.0)), meta.get("train_candidates"),
                   meta.get("train_seconds"))

    def training_days(self, seed: int) -> int:
        """Days of `seed`'s marketplace this ranker trained on (0 when it never saw it)."""
        return self.days - self.held_out_days if self.days and seed in self.seeds else 0


@dataclass
class Protocol:
    seeds: list[int]
    members: int
    days: int
    held_out_days: int
    max_groups: int | None
    trained: list[TrainedOn]
    text_share: float
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts of the data, found once simulated
    career_move_share: float | None = None  # None: the simulator's default
    community_strength: float | None = None

    @property
    def signals(self) -> dict:
        """The graph signals' settings, as `simulated_split` takes them."""
        return {"career_move_share": self.career_move_share, "community_strength": self.community_strength}

    def lines(self) -> list[str]:
        first = self.days - self.held_out_days
        out = [f"marketplaces: seeds {', '.join(map(str, self.seeds))}; {self.members} members, "
               f"{2 * self.members} jobs, {self.days} days each; a share {self.text_share:g} of members "
               "hold a wish only their free text states; graph signals: career moves "
               f"{_or_default(self.career_move_share, 'career_move_share'):g}, community strength "
               f"{_or_default(self.community_strength, 'community_strength'):g}",
               f"train: days 0-{first - 1} of each marketplace (baselines fitted per marketplace); "
               f"held out: days {first}-{self.days - 1}, every example"
               + (f" (at most {self.max_groups} slates per task)" if self.max_groups else " (no cap)"),
               "AUC +- SE: DeLong clustered by member (Obuchowski 1997); 'vs LR+text': paired difference, "
               "better/worse only beyond 1 SE of the difference, else tie",
               f"cold = fewer than 3 past interactions besides views; '{HELD_OUT_TASK}' = view -> click, "
               "save or apply (the ranker's held-out task formulation)",
               "ceiling = the simulator's hidden affinity at the request (dismiss: its opposite; hire: "
               "qualified first)",
               f"LRs: C from {C_GRID} per marketplace and task on the last fifth of its training days; "
               "LR + text adds TF-IDF of member text (title, skills, about, queries) and job text (title, "
               "skills, description), their product, and hashed (about/query word, job title word) pairs"]
        for t in self.trained:
            out.append(f"ranker {t.path}: trained on seeds {t.seeds or '?'}, {t.members} members, "
                       f"{t.days} days ({t.days - t.held_out_days if t.days else '?'} training days)")
        return out + [f"note: {n}" for n in self.notes] + [f"WARNING: {w}" for w in self.warnings]


def _or_default(value, name: str):
    from streams.simulator import MarketplaceConfig

    return getattr(MarketplaceConfig(), name) if value is None else value


def _agreed(values: list, what: str):
    known = sorted({v for v in values if v is not None})
    if len(known) > 1:
        raise SystemExit(f"the rankers were trained with different {what}: {known}; evaluate them separately")
    return known[0] if known else None


def _setting(cli, trained, what: str, fallback, allow_mismatch: bool, warnings: list[str]):
    if cli is None:
        return trained if trained is not None else fallback
    if trained is not None and cli != trained:
        msg = f"--{what} {cli} contradicts the ranker's training marketplaces ({what} {trained})"
        if not allow_mismatch:
            raise SystemExit(f"refusing: {msg}; drop the flag, or pass --allow-mismatch to compare anyway")
        warnings.append(msg)
    return cli


def resolve_protocol(args) -> Protocol:
    trained = [TrainedOn.read(p) for p in args.ranker]
    warnings: list[str] = []
    members = _setting(args.members, _agreed([t.members for t in trained], "members"), "members", 500,
                       args.allow_mismatch, warnings)
    days = _setting(args.days, _agreed([t.days for t in trained], "days"), "days", 21, args.allow_mismatch, warnings)
    trained_seeds = sorted({s for t in trained for s in t.seeds})
    seeds = args.seeds if args.seeds is not None else (trained_seeds or [0, 1, 2])
    for t in trained:
        if t.members is None or t.days is None or not t.seeds:
            warnings.append(f"{t.path}: ranker.json lacks sim_members/sim_days/seed; settings not checked")
        unseen = [s for s in seeds if s not in t.seeds]
        if unseen and t.seeds:
            warnings.append(f"{t.path} never trained on seeds {unseen}: those marketplaces are new to it")
    from streams.simulator import MarketplaceConfig

    text_share = _setting(args.text_share, _agreed([t.text_share for t in trained], "text-share"), "text-share",
                          MarketplaceConfig().text_preference_share, args.allow_mismatch, warnings)
    signals = {}
    for name in ("career_move_share", "community_strength"):
        flag = name.replace("_", "-")
        signals[name] = _setting(getattr(args, name, None), _agreed([getattr(t, name) for t in trained], flag), flag,
                                 getattr(MarketplaceConfig(), name), args.allow_mismatch, warnings)
    held_out_days = _agreed([t.held_out_days for t in trained], "held-out days") or HELD_OUT_DAYS
    protocol = Protocol(seeds, members, days, held_out_days, args.max_groups, trained, text_share, warnings,
                        **signals)
    check_no_overlap(protocol)
    return protocol


def check_no_overlap(protocol: Protocol) -> None:
    """Refuse (whatever the flags) when a held-out day is one a ranker trained on."""
    first_held_out = protocol.days - protocol.held_out_days
    for t in protocol.trained:
        for seed in protocol.seeds:
            if t.training_days(seed) > first_held_out:
                raise SystemExit(
                    f"refusing: seed {seed}'s held-out days start at day {first_held_out}, but {t.path} "
                    f"trained on its days 0-{t.training_days(seed) - 1}")


# ---- marketplaces -----------------------------------------------------------------------


class RequestTruth:
    """The simulator's hidden truth as it stood when a held-out job was shown or applied
    to (the simulator mutates members, e.g. their skills, as days go by). The simulator
    buffers a day before emitting it, so "then" means the end of that simulated day."""

    def __init__(self, since: float):
        self.since = since
        self.at: dict[tuple[str, str, int], tuple[float, bool]] = {}

    def watch(self, truth, event) -> None:
        p = getattr(event, "payload", None)
        job_id = getattr(p, "job_id", None)
        if job_id is None or not hasattr(p, "action") or event.event_time.timestamp() < self.since:
            return
        key = (p.member_id, job_id, int(event.event_time.timestamp() // 86400))
        if key not in self.at:
            self.at[key] = (truth.affinity(p.member_id, job_id), truth.qualified(p.member_id, job_id))

    def _lookup(self, ex: Example) -> tuple[float, bool]:
        day = int(ex.request_time // 86400)
        for d in (day, day + 1):  # a slate may run past midnight
            if (ex.member_id, ex.job.job_id, d) in self.at:
                return self.at[(ex.member_id, ex.job.job_id, d)]
        raise KeyError(f"no truth recorded for {ex.member_id} x {ex.job.job_id} on day {day}")

    def ceiling(self, ex: Example) -> float:
        """Hidden affinity; for dismiss its opposite (members dismiss what they do not
        want); for hire, qualification first (what the employer decides on)."""
        affinity, qualified = self._lookup(ex)
        if ex.task == "dismiss":
            return -affinity
        return float(qualified) + 0.1 * affinity if ex.task == "hire" else affinity


def with_held_out_task(examples: list[Example]) -> list[Example]:
    """Adds one `interest` example per view impression: the click example (same slate,
    job and prompt) relabelled engaged = clicked, saved or applied."""
    seen: Counter = Counter()
    engaged: dict[tuple, int] = defaultdict(int)
    clicks = []
    for ex in examples:
        if ex.task in ENGAGED_TASKS:
            key = (ex.slate_id, ex.job.job_id, ex.task)
            seen[key] += 1
            engaged[(ex.slate_id, ex.job.job_id, seen[key])] |= ex.label
            if ex.task == "click":
                clicks.append((ex, seen[key]))
    return [replace(ex, label=engaged[(ex.slate_id, ex.job.job_id, k)]) for ex, k in clicks]


def held_out_task_is_click(markets: list["Market"]) -> bool:
    """True when no view was saved or applied to without a click: then `interest` has the
    click labels, and its rows differ from click's only in the question the ranker is asked."""
    return all([ex.label for ex in m.held.get(HELD_OUT_TASK, [])] == [ex.label for ex in m.held.get("click", [])]
               for m in markets)


def by_task(examples: list[Example]) -> dict[str, list[Example]]:
    out = {t: [ex for ex in examples if ex.task == t] for t in TASKS}
    out[HELD_OUT_TASK] = with_held_out_task(examples)
    return {t: exs for t, exs in out.items() if exs}


def cap_groups(examples: list[Example], max_groups: int | None, seed: int) -> list[Example]:
    """The same (slate, task) groups for every method; all of them when max_groups is None."""
    if not max_groups:
        return examples
    tasks: dict[str, list] = defaultdict(list)
    for key, group in groups_of(examples).items():
        tasks[key[1]].append(group)
    rng = random.Random(seed)
    out = []
    for task in sorted(tasks):
        groups = sorted(tasks[task], key=lambda g: g[0].slate_id)
        out.extend(ex for g in (rng.sample(groups, max_groups) if len(groups) > max_groups else groups) for ex in g)
    return out


@dataclass
class Market:
    """One simulated marketplace: its train and held-out examples by task, and the truth."""

    seed: int
    description: str
    train: dict[str, list[Example]]
    held: dict[str, list[Example]]
    truth: RequestTruth
    config: object = None  # its MarketplaceConfig

    @classmethod
    def simulate(cls, seed: int, protocol: Protocol) -> "Market":
        from streams.simulator import MarketplaceConfig

        start = MarketplaceConfig(seed=seed).start
        since = (start + timedelta(days=protocol.days - protocol.held_out_days)).timestamp()
        truth = RequestTruth(since)
        split = simulated_split(protocol.members, protocol.days, seed, protocol.held_out_days,
                                progress=False, on_event=truth.watch, text_share=protocol.text_share,
                                **protocol.signals)
        held = cap_groups(split.held_out, protocol.max_groups, seed)
        return cls(seed, split.description, by_task(split.train), by_task(held), truth, split.config)

    @classmethod
    def held_out_marketplace(cls, max_slates: int) -> "Market":
        """The declared held-out marketplace (streams/simulator/held_out.py): its training
        days fit the baselines' coefficients; `max_slates` random slates per task of its
        scored days are evaluated (the union over tasks: 5,154 slates at 1,000, ~20 min
        of the pruned ranker on 2 cores; all of them would take hours)."""
        cfg, train_days = HELD_OUT_MARKETPLACE.config, HELD_OUT_MARKETPLACE.train_days
        truth = RequestTruth((cfg.start + timedelta(days=train_days)).timestamp())
        split = split_marketplace(cfg, cfg.days - train_days, progress=False, on_event=truth.watch)
        held = cap_groups(split.held_out, max_slates, cfg.seed)
        return cls(cfg.seed, split.description, by_task(split.train), by_task(held), truth, cfg)

    def counts(self, trained: list[TrainedOn]) -> dict:
        return {"seed": self.seed, "description": self.description,
                "rankers_trained_on_it": [t.path for t in trained if t.training_days(self.seed)],
                "train": {t: len(v) for t, v in self.train.items()},
                "held_out": {t: [len(v), sum(ex.label for ex in v)] for t, v in self.held.items()},
                "held_out_members": len({ex.member_id for v in self.held.values() for ex in v})}



# ---- scores of one marketplace -----------------------------------------------------------

Scores = dict[str, dict[str, np.ndarray]]  # method -> task -> one score per held-out example


def prefix_sizes(total: int) -> list[int]:
    """Pooled training sizes for the learning curve: the fixed steps below `total`, then all."""
    return [s for s in CURVE_SIZES if s < total] + [total]


@dataclass
class BaselineRun:
    """Baselines fitted on one marketplace's training days, scoring its held-out days."""

    market: Market
    bm25: BM25
    train_design: Design
    held_design: Design
    chosen_c: dict[tuple[str, bool], float] = field(default_factory=dict)

    @classmethod
    def fit(cls, market: Market, frozen_c: dict[tuple[str, bool], float] | None = None) -> "BaselineRun":
        """`frozen_c`: the LRs' regularization chosen elsewhere (the held-out marketplace
        takes the tuning marketplaces'), else chosen on this marketplace's training days."""
        train_all = [ex for v in market.train.values() for ex in v]
        held_all = [ex for v in market.held.values() for ex in v]
        jobs = {ex.job.job_id: ex for ex in train_all + held_all}
        bm25 = BM25([words(job_text(ex)) for ex in jobs.values()])
        text = TextFeatures().fit(train_all)
        train, held = Design.build(train_all, bm25, text), Design.build(held_all, bm25, text)
        used = train.used_columns()
        return cls(market, bm25, train.keep_columns(used), held.keep_columns(used), dict(frozen_c or {}))

    def scores(self) -> Scores:
        out: Scores = defaultdict(dict)
        for task, held in self.market.held.items():
            out[CEILING][task] = np.array([self.market.truth.ceiling(ex) for ex in held])
            out["popularity"][task] = np.array([popularity(ex) for ex in held])
            out["BM25 term match"][task] = np.array([self.bm25.score(words(member_text(ex)), words(job_text(ex)))
                                                     for ex in held])
            for name, with_text in (("feature LR", False), (REFERENCE, True)):
                s = self.lr_scores(task, with_text)
                if s is not None:
                    out[name][task] = s
        return out

    def lr_scores(self, task: str, with_text: bool, n_train: int | None = None) -> np.ndarray | None:
        """LR fitted on the first `n_train` training examples of `task` (time order); None
        when those hold a single class."""
        train = self.market.train.get(task, [])[:n_train]
        y = np.array([ex.label for ex in train])
        if not 0 < y.sum() < len(y):
            return None
        c = self.regularization(task, with_text)
        model = FeatureLR(with_text, c).fit(self.train_design, self.train_design.rows(train), y)
        return model.predict(self.held_design, self.held_design.rows(self.market.held[task]))

    def counts(self, trained: list[TrainedOn]) -> dict:
        c = {f"{task} {'LR + text' if text else 'LR'}": v for (task, text), v in sorted(self.chosen_c.items())}
        return {**self.market.counts(trained), "chosen_c": c}

    def regularization(self, task: str, with_text: bool) -> float:
        """C chosen on the last fifth of the training days (fit on the first four fifths),
        once per task and model: a baseline tuned as a team would tune it."""
        key = (task, with_text)
        if key not in self.chosen_c:
            if self.market.config is not None:
                refuse_tuning(self.market.config, "the LRs' regularization")
            train = self.market.train.get(task, [])
            cut = int(0.8 * len(train))
            fit, val = train[:cut], train[cut:]
            y_fit, y_val = np.array([ex.label for ex in fit]), np.array([ex.label for ex in val])
            if not (0 < y_fit.sum() < len(y_fit) and 0 < y_val.sum() < len(y_val)):
                self.chosen_c[key] = 1.0
            else:
                rows_fit, rows_val = self.train_design.rows(fit), self.train_design.rows(val)
                self.chosen_c[key] = max(C_GRID, key=lambda c: auc(FeatureLR(with_text, c).fit(
                    self.train_design, rows_fit, y_fit).predict(self.train_design, rows_val), y_val))
        return self.chosen_c[key]


def ranker_has_ask() -> bool:
    return "ask" in inspect.signature(score_examples).parameters


def zero_shot_sample(examples: list[Example], n_slates: int | None, seed: int) -> np.ndarray:
    """Which examples the zero-shot probes score: those of `n_slates` slates drawn at
    random (all when None). Unscored examples get NaN and are compared on the sample."""
    slates = sorted({ex.slate_id for ex in examples})
    if n_slates is None or n_slates >= len(slates):
        return np.ones(len(examples), dtype=bool)
    chosen = set(random.Random(seed).sample(slates, n_slates))
    return np.array([ex.slate_id in chosen for ex in examples], dtype=bool)


def score_sample(ranker, examples: list[Example], keep: np.ndarray, prompts, **kw) -> np.ndarray:
    out = np.full(len(examples), np.nan)
    idx = np.flatnonzero(keep)
    out[idx] = score_examples(ranker, [examples[i] for i in idx], prompts, **kw)
    return out


def ranker_scores(ranker, name: str, market: Market, zero_shot: bool, zero_shot_slates: int | None = None) -> Scores:
    """The ranker's own rows, its held-out phrasing and its held-out task on one marketplace.

    Every task's examples go through `score_examples` together, so a slate's prefix is
    encoded once and every task of every job is answered in that one pass (as served).
    The zero-shot probes score a sample of `zero_shot_slates` slates (all when None)."""
    prompts = PromptCache(ranker)
    tasks = [t for t in TASKS if t in market.held]
    pooled = [ex for t in tasks for ex in market.held[t]]
    ends = np.cumsum([len(market.held[t]) for t in tasks])

    def per_task(scores: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(tasks, np.split(scores, ends[:-1])))

    out: Scores = defaultdict(dict)
    out[name] = per_task(score_examples(ranker, pooled, prompts, phrasing=0))
    if zero_shot:
        keep = zero_shot_sample(pooled, zero_shot_slates, market.seed)
        out[f"{name} held-out phrasing"] = per_task(score_sample(ranker, pooled, keep, prompts, phrasing=-1))
    if HELD_OUT_TASK in market.held:
        interest = market.held[HELD_OUT_TASK]  # the click examples, relabelled: their click scores are the same
        out[f"{name} click question"][HELD_OUT_TASK] = out[name]["click"]
        if zero_shot and ranker_has_ask():
            keep = zero_shot_sample(interest, zero_shot_slates, market.seed)
            out[f"{name} held-out task"][HELD_OUT_TASK] = score_sample(
                ranker, interest, keep, prompts, phrasing=0, ask=HELD_OUT_TASK)
    return out


# ---- pooled evaluation -------------------------------------------------------------------


@dataclass
class TaskPool:
    """One task's held-out examples of every marketplace, with every method's scores."""

    task: str
    labels: np.ndarray
    members: np.ndarray  # seed/member: the cluster for standard errors
    member_days: np.ndarray  # seed/member/day: the ranked lists for NDCG@10
    cold: np.ndarray
    scores: dict[str, np.ndarray]

    @classmethod
    def pool(cls, task: str, markets: list[Market], per_market: list[Scores]) -> "TaskPool":
        held = [(m.seed, ex) for m in markets for ex in m.held.get(task, [])]
        methods = [k for k in per_market[0] if all(task in s.get(k, {}) for s in per_market)]
        return cls(task, np.array([ex.label for _, ex in held]),
                   np.array([f"{s}/{ex.member_id}" for s, ex in held]),
                   np.array([f"{s}/{ex.member_id}/{int(ex.request_time // 86400)}" for s, ex in held]),
                   np.array([ex.is_cold_start for _, ex in held], dtype=bool),
                   {k: np.concatenate([s[k][task] for s in per_market]) for k in methods})

    def segment(self, name: str) -> np.ndarray:
        return {"all": np.ones(len(self.labels), bool), "cold": self.cold, "warm": ~self.cold}[name]


def ndcg10(scores: np.ndarray, labels: np.ndarray, lists: np.ndarray) -> float:
    """Mean NDCG@10 over member-days with a positive and at least two candidates."""
    values = []
    for key in np.unique(lists):
        idx = np.flatnonzero(lists == key)
        if len(idx) >= 2 and labels[idx].any():
            values.append(ndcg_at_k(scores[idx], labels[idx], 10))
    return float(np.mean(values)) if values else float("nan")


def verdict(diff: float, se: float) -> str:
    if not (se == se and diff == diff):
        return "n/a"
    return "better" if diff > se else "worse" if diff < -se else "tie"


def evaluate_segment(pool: TaskPool, segment: str) -> list[dict]:
    """One row per method; a method scored on a sample (NaN elsewhere: the zero-shot
    probes) is evaluated, and compared with the reference, on its sample only."""
    mask = pool.segment(segment)
    full = [m for m in pool.scores if not np.isnan(pool.scores[m][mask]).any()]
    rows = _segment_rows(pool, segment, mask, full)
    for m in (m for m in pool.scores if m not in full):
        sample = mask & ~np.isnan(pool.scores[m])
        if 0 < pool.labels[sample].sum() < sample.sum():
            with_ref = [m] + ([REFERENCE] if REFERENCE in full else [])
            rows += [r for r in _segment_rows(pool, segment, sample, with_ref) if r["method"] == m]
    return rows


def _segment_rows(pool: TaskPool, segment: str, mask: np.ndarray, methods: list[str]) -> list[dict]:
    y = pool.labels[mask]
    aucs, cov = auc_covariance([pool.scores[m][mask] for m in methods], y, pool.members[mask])
    ref = methods.index(REFERENCE) if REFERENCE in methods else None
    rows = []
    for i, m in enumerate(methods):
        row = dict(task=pool.task, segment=segment, method=m, n=int(mask.sum()), positives=int(y.sum()),
                   auc=float(aucs[i]), se=float(np.sqrt(cov[i, i])))
        if ref is not None and i != ref:
            d = float(aucs[i] - aucs[ref])
            d_se = float(np.sqrt(max(cov[i, i] + cov[ref, ref] - 2 * cov[i, ref], 0.0)))
            row.update(vs_reference=d, vs_reference_se=d_se, verdict=verdict(d, d_se))
        if pool.task in RANKING_TASKS:
            row["ndcg10"] = ndcg10(pool.scores[m][mask], y, pool.member_days[mask])
        rows.append(row)
    return rows


def retention(pool: TaskPool, ranker: str, segment: str = "all") -> dict | None:
    """(AUC - 0.5) the held-out phrasing (or, on the held-out task, the held-out formulation
    against the click question) keeps of the ranker's, with its delta-method SE."""
    if pool.task == HELD_OUT_TASK:
        base, probe = f"{ranker} click question", f"{ranker} held-out task"
    else:
        base, probe = ranker, f"{ranker} held-out phrasing"
    if base not in pool.scores or probe not in pool.scores:
        return None
    mask = pool.segment(segment) & ~np.isnan(pool.scores[probe])  # the probe's sample
    if not 0 < pool.labels[mask].sum() < mask.sum():
        return None
    aucs, cov = auc_covariance([pool.scores[base][mask], pool.scores[probe][mask]], pool.labels[mask],
                               pool.members[mask])
    ratio, se = excess_auc_ratio(aucs, cov, num=1, den=0)
    return dict(task=pool.task, ranker=ranker, probe=probe, of=base, segment=segment, retention=ratio, se=se)


# ---- learning curve ----------------------------------------------------------------------


def lr_text_curve(runs: list[BaselineRun]) -> list[dict]:
    """Pooled AUC of the LR + text fitted on growing prefixes of each task's training
    days; each marketplace gives its share of the pooled size."""
    points = []
    for task in CURVE_TASKS:
        totals = [len(r.market.train.get(task, [])) for r in runs]
        if not all(totals) or not all(task in r.market.held for r in runs):
            continue
        for size in prefix_sizes(sum(totals)):
            shares = [max(1, round(size * t / sum(totals))) for t in totals]
            parts = [r.lr_scores(task, True, n) for r, n in zip(runs, shares)]
            if any(p is None for p in parts):
                continue
            held = [(r.market.seed, ex) for r in runs for ex in r.market.held[task]]
            a, se = auc_se(np.concatenate(parts), [ex.label for _, ex in held],
                           [f"{s}/{ex.member_id}" for s, ex in held])
            points.append(dict(method=REFERENCE, task=task, candidates=int(sum(shares)), auc=a, se=se))
    return points


def ranker_curve(trained: TrainedOn, markets: list[Market], results: list[dict], threads: int) -> list[dict]:
    """The ranker's learning curve: its snapshots and itself scored on the whole held-out
    set; without snapshots, the trainer's probe points (`learning_curve.json`)."""
    path, name = trained.path, Path(trained.path).name
    snapshots = sorted((Path(path) / SNAPSHOTS).glob("*-candidates"))
    if not snapshots:
        f = Path(path) / "learning_curve.json"
        if not f.exists():
            print(f"{path}: no snapshots and no learning_curve.json; the ranker's curve is skipped")
            return []
        print(f"{path}: no snapshots (`train ranker --snapshots`): its curve is the trainer's 120-slate probes")
        return [dict(method=name, task=p["task"], candidates=int(p["candidates"]), auc=float(p["auc"]),
                     se=float(p.get("se", float("nan")))) for p in json.loads(f.read_text())]
    import torch

    from models.ranker import Ranker

    torch.set_num_threads(threads)
    points = [dict(method=name, task=r["task"], candidates=int(trained.train_candidates), auc=r["auc"], se=r["se"])
              for r in results if r["method"] == name and r["segment"] == "all" and r["task"] in CURVE_TASKS]
    for snap in snapshots:
        t = time.perf_counter()
        ranker = Ranker.load(snap)
        per_market = [ranker_scores(ranker, snap.name, m, zero_shot=False) for m in markets]
        for task in CURVE_TASKS:
            if all(task in m.held for m in markets):
                pool = TaskPool.pool(task, markets, per_market)
                a, se = auc_se(pool.scores[snap.name], pool.labels, pool.members)
                points.append(dict(method=name, task=task, candidates=int(ranker.meta["train_candidates"]), auc=a,
                                   se=se))
        print(f"{name} snapshot {snap.name}: scored in {time.perf_counter() - t:.0f} s", flush=True)
    return points


def extrapolate(curve: list[dict], results: list[dict], rankers: list[TrainedOn]) -> list[dict]:
    """Per ranker and task: the slope of AUC in ln(candidates) through its curve points,
    and where that line meets the LR + text's AUC on all its training data."""
    out = []
    for trained in rankers:
        name = Path(trained.path).name
        per_minute = (trained.train_candidates or 0) / max(trained.train_seconds or 0, 1e-9) * 60
        for task in CURVE_TASKS:
            pts = [p for p in curve if p["method"] == name and p["task"] == task and p["se"] > 0]
            ref = [r for r in results if r["method"] == REFERENCE and r["segment"] == "all" and r["task"] == task]
            if len(pts) < 3 or not ref:
                continue
            x = np.log([p["candidates"] for p in pts])
            y, w = np.array([p["auc"] for p in pts]), 1 / np.array([p["se"] for p in pts]) ** 2
            design = np.stack([np.ones_like(x), x], axis=1)
            cov = np.linalg.inv(design.T @ (design * w[:, None]))
            a, b = cov @ design.T @ (w * y)
            b_se = float(np.sqrt(cov[1, 1]))
            now = max(p["candidates"] for p in pts)
            target = ref[0]["auc"]
            row = dict(ranker=name, task=task, points=len(pts), slope_per_doubling=float(b * np.log(2)),
                       slope_se=b_se * float(np.log(2)), lr_text_auc=target, candidates_now=int(now),
                       line_auc_now=float(a + b * np.log(now)))
            if b > 2 * b_se:
                need = float(np.exp((target - a) / b))
                row.update(candidates_needed=need, minutes_needed=need / per_minute)
            out.append(row)
    return out


def held_intro(held: dict) -> str:
    return (f"The {held['label']}: nothing chosen on it (the LRs' regularization frozen from the tuning "
            "marketplaces; the rankers trained elsewhere: occupations, signals and size they never saw); "
            f"{held['slates_per_task']} random slates per task of its scored days")


def extrapolation_lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        head = (f"{r['ranker']:>16} {r['task']:<17} {r['slope_per_doubling']:+.3f} ± {r['slope_se']:.3f} per doubling; "
                f"line at {r['candidates_now']:,} candidates {r['line_auc_now']:.3f}, LR + text {r['lr_text_auc']:.3f}: ")
        if r["line_auc_now"] >= r["lr_text_auc"]:
            lines.append(head + "already there on the line")
        elif "candidates_needed" not in r:
            lines.append(head + "no measurable gain with more data (slope within 2 SE of 0)")
        else:
            lines.append(head + f"meets it at ~{r['candidates_needed']:,.0f} candidates "
                                f"(~{r['minutes_needed'] / 60:,.1f} h of training at this run's rate)")
    return lines


def plot_curve(points: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in EVAL_TASKS if any(p["task"] == t for p in points)]
    if not tasks:
        print("learning curve: nothing to draw")
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method in dict.fromkeys(p["method"] for p in points if p["task"] == task):
            pts = sorted((p for p in points if p["task"] == task and p["method"] == method),
                         key=lambda p: p["candidates"])
            ax.errorbar([p["candidates"] for p in pts], [p["auc"] for p in pts],
                        yerr=[p["se"] for p in pts], marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("labelled candidates seen")
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("held-out AUC (+- 1 SE)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


# ---- output ------------------------------------------------------------------------------


def _num(v, digits: int = 3, signed: bool = False) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


COLUMNS = ("task", "segment", "method", "n", "pos", "AUC", "SE", "vs LR+text", "SE(diff)", "verdict", "NDCG@10")


def table_cells(r: dict) -> list[str]:
    return [r["task"], r["segment"], r["method"], str(r["n"]), str(r["positives"]), _num(r["auc"]), _num(r["se"]),
            _num(r.get("vs_reference"), signed=True), _num(r.get("vs_reference_se")),
            r.get("verdict", "(ref)" if r["method"] == REFERENCE else ""), _num(r.get("ndcg10"))]


def plain_table(header: tuple, rows: list[list[str]], breaks: set[int] = frozenset()) -> str:
    """Fixed-width text, never truncated: what a pipe or a CI log shows in full."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells):  # names left, numbers right
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    out = [line(header), rule]
    for i, r in enumerate(rows):
        if i in breaks:
            out.append(rule)
        out.append(line(r))
    return "\n".join(out)


def markdown_table(header: tuple, rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def result_tables(results: list[dict], retained: list[dict], counts: list[dict]) -> tuple[list, list, list]:
    rows = [table_cells(r) for r in results]
    breaks = {i for i in range(1, len(results)) if results[i]["task"] != results[i - 1]["task"]}
    ret_rows = [[r["task"], r["segment"], r["probe"], f"of {r['of']}", _num(r["retention"]), _num(r["se"])]
                for r in retained]
    count_rows = [[str(c["seed"]), "yes" if c["rankers_trained_on_it"] else "no", str(c["held_out_members"]),
                   str(sum(n for t, n in c["train"].items() if t != HELD_OUT_TASK)),
                   *(f"{c['held_out'].get(t, [0, 0])[0]} ({c['held_out'].get(t, [0, 0])[1]})" for t in EVAL_TASKS)]
                  for c in counts]
    return [rows, breaks], ret_rows, count_rows


RET_HEADER = ("task", "segment", "zero-shot probe", "relative to", "retention", "SE")
COUNT_HEADER = ("seed", "a ranker trained on it", "held-out members", "train examples",
                *(f"{t} n (pos)" for t in EVAL_TASKS))


def frozen_choices(runs: list[BaselineRun]) -> dict[tuple[str, bool], float]:
    """The LRs' regularization for the held-out marketplace: per task and model, the
    (lower) median of what the tuning marketplaces chose."""
    out = {}
    for key in {k for r in runs for k in r.chosen_c}:
        chosen = sorted(r.chosen_c[key] for r in runs if key in r.chosen_c)
        out[key] = chosen[(len(chosen) - 1) // 2]
    return out


def evaluate_held_out_marketplace(args, protocol: Protocol, runs: list[BaselineRun]) -> dict:
    """Every baseline and ranker on the held-out marketplace, nothing chosen on it: the
    LRs fit their coefficients on its training days with the tuning marketplaces'
    regularization; the rankers were trained elsewhere and score it as they are."""
    t = time.perf_counter()
    market = Market.held_out_marketplace(args.held_out_slates)
    with threadpool_limits(1):
        # a task no tuning marketplace chose for keeps the LR's default, as one without both classes does
        defaults = {(task, text): 1.0 for task in market.train for text in (False, True)}
        run = BaselineRun.fit(market, {**defaults, **frozen_choices(runs)})
        per_market = [run.scores()]
    score_rankers(args.ranker, args.threads, [market], per_market, zero_shot=False)
    pools = [TaskPool.pool(task, [market], per_market) for task in EVAL_TASKS if task in market.held]
    results = [row for p in pools for seg in SEGMENTS for row in evaluate_segment(p, seg)]
    print(f"held-out marketplace: simulated, fitted and scored in {time.perf_counter() - t:.0f} s", flush=True)
    return dict(label=HELD_OUT_MARKETPLACE.label, slates_per_task=args.held_out_slates,
                counts=run.counts(protocol.trained), results=results)


def report(protocol: Protocol, results, retained, counts, curve, extrapolated, held, rerun: str, seconds: float) -> None:
    (rows, breaks), ret_rows, count_rows = result_tables(results, retained, counts)
    print("\nper marketplace (held-out examples, positives):")
    print(plain_table(COUNT_HEADER, count_rows))
    for n in protocol.notes:
        print(f"note: {n}")
    for w in protocol.warnings:
        print(f"!!! WARNING: {w}")
    print("\nRanker quality, held-out days, pooled:")
    print(plain_table(COLUMNS, rows, breaks))
    if ret_rows:
        print("\nZero-shot retention: (AUC - 0.5) kept, delta-method SE:")
        print(plain_table(RET_HEADER, ret_rows))
    if held:
        print(f"\n{held_intro(held)}")
        (h_rows, h_breaks), _, h_counts = result_tables(held["results"], [], [held["counts"]])
        print(plain_table(COUNT_HEADER, h_counts))
        print(plain_table(COLUMNS, h_rows, h_breaks))
    if extrapolated:
        print("\nWhat more data would buy: AUC = a + b ln(candidates) through the ranker's curve, "
              "to the LR + text's AUC:")
        print("\n".join(extrapolation_lines(extrapolated)))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ranker_quality.json").write_text(json.dumps(dict(
        protocol=protocol.lines(), seeds=protocol.seeds, members=protocol.members, days=protocol.days,
        held_out_days=protocol.held_out_days, rankers=[t.path for t in protocol.trained],
        warnings=protocol.warnings, per_seed=counts, results=results, retention=retained,
        learning_curve=curve, extrapolation=extrapolated, held_out_marketplace=held, rerun=rerun), indent=2))
    md = ["# Ranker quality", "", *(f"- {line}" for line in protocol.lines()), "",
          markdown_table(COUNT_HEADER, count_rows), "", markdown_table(COLUMNS, rows), ""]
    if ret_rows:
        md += [markdown_table(RET_HEADER, ret_rows), ""]
    if held:
        (h_rows, _), _, h_counts = result_tables(held["results"], [], [held["counts"]])
        md += [f"## {held_intro(held)}", "", markdown_table(COUNT_HEADER, h_counts), "",
               markdown_table(COLUMNS, h_rows), ""]
    md += ["![learning curve](ranker_learning_curve.png)", ""]
    if extrapolated:
        md += ["What more data would buy (a line in ln(candidates) through the ranker's curve):", "",
               *(f"- {line.strip()}" for line in extrapolation_lines(extrapolated)), ""]
    md += [f"Rerun: `{rerun}`", ""]
    (OUT / "ranker_quality.md").write_text("\n".join(md))
    print(f"\nwrote {OUT}/ranker_quality.{{json,md}} in {seconds:.0f} s")
    print(f"rerun: {rerun}")


# ---- main --------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranker", action="append", default=[], help="checkpoint folder (repeatable)")
    ap.add_argument("--members", type=int, default=None, help="default: the rankers' sim_members, else 500")
    ap.add_argument("--days", type=int, default=None, help="default: the rankers' sim_days, else 21")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="comma-separated simulator seeds; default: the rankers' training seeds, else 0,1,2")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="evaluate even where the command line contradicts the rankers' training settings")
    ap.add_argument("--text-share", type=float, default=None,
                    help="share of members with a wish only their text states (default: the rankers', else the "
                         "simulator's); 0 gives the table without them")
    ap.add_argument("--career-move-share", type=float, default=None,
                    help="share of applies and hires along career paths (default: the rankers', else the "
                         "simulator's); a ranker trained without them is refused on a marketplace with them")
    ap.add_argument("--community-strength", type=float, default=None,
                    help="strength of latent communities' tastes (default: the rankers', else the simulator's)")
    ap.add_argument("--max-groups", type=int, default=None, help="at most this many slates per task (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-zero-shot", action="store_true")
    ap.add_argument("--zero-shot-slates", type=int, default=None,
                    help="score the held-out phrasing and task on this many random slates per marketplace "
                         "(default: all); they are compared with the reference on that sample")
    ap.add_argument("--no-curve", action="store_true", help="skip the LR + text learning curve")
    ap.add_argument("--no-held-out-marketplace", dest="held_out_marketplace", action="store_false",
                    help="skip the held-out marketplace's table (streams/simulator/held_out.py)")
    ap.add_argument("--held-out-slates", type=int, default=1000,
                    help="random slates per task scored on the held-out marketplace")
    return ap.parse_args(argv)


def rerun_command(args, protocol: Protocol) -> str:
    parts = ["python", "bench/ranker_quality.py", *(f"--ranker {shlex.quote(r)}" for r in args.ranker),
             f"--members {protocol.members}", f"--days {protocol.days}",
             f"--seeds {','.join(map(str, protocol.seeds))}", f"--text-share {protocol.text_share:g}",
             f"--career-move-share {_or_default(protocol.career_move_share, 'career_move_share'):g}",
             f"--community-strength {_or_default(protocol.community_strength, 'community_strength'):g}"]
    for flag, on in (("--allow-mismatch", args.allow_mismatch), ("--no-zero-shot", args.no_zero_shot),
                     ("--no-curve", args.no_curve), ("--no-held-out-marketplace", not args.held_out_marketplace)):
        parts += [flag] if on else []
    parts += [f"--max-groups {args.max_groups}"] if args.max_groups else []
    parts += [f"--zero-shot-slates {args.zero_shot_slates}"] if args.zero_shot_slates else []
    parts += [f"--held-out-slates {args.held_out_slates}"] if args.held_out_marketplace and args.held_out_slates != 1000 else []
    return " ".join(parts)


def score_rankers(paths: list[str], threads: int, markets: list[Market], per_market: list[Scores],
                  zero_shot: bool, zero_shot_slates: int | None = None) -> list[str]:
    """Adds each ranker's rows to every marketplace's scores; returns the rankers' names."""
    import torch

    from models.ranker import Ranker

    torch.set_num_threads(threads)
    if paths and zero_shot and not ranker_has_ask():
        print(f"held-out task '{HELD_OUT_TASK}' skipped: serving.training.ranker_pipeline.score_examples has no `ask` "
              "keyword yet (the ranker rebuild adds it)")
    names = []
    for path in paths:
        ranker, name = Ranker.load(path), Path(path).name
        names.append(name)
        for market, scores in zip(markets, per_market):
            t = time.perf_counter()
            for method, tasks in ranker_scores(ranker, name, market, zero_shot, zero_shot_slates).items():
                scores[method].update(tasks)
            print(f"{name} on seed {market.seed}: scored in {time.perf_counter() - t:.0f} s on {ranker.device}",
                  flush=True)
    return names


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"CPU: {cpu_name()}")
    t0 = time.perf_counter()
    protocol = resolve_protocol(args)
    if args.zero_shot_slates:
        protocol.notes.append(f"held-out phrasing and task: scored on {args.zero_shot_slates} random held-out "
                              "slates per marketplace, compared with LR + text and retention on that sample")
    rerun = rerun_command(args, protocol)
    print("Protocol:\n" + "\n".join(f"  {line}" for line in protocol.lines()), flush=True)
    markets = [Market.simulate(seed, protocol) for seed in protocol.seeds]
    if held_out_task_is_click(markets):
        protocol.notes.append(f"'{HELD_OUT_TASK}' labels equal the click labels here (no save or apply "
                              "without a click): only the question asked differs")
    t = time.perf_counter()
    with threadpool_limits(1):  # BLAS threads made the sparse LR fits ~20x slower on a busy 2-core box
        runs = [BaselineRun.fit(m) for m in markets]
        per_market = [r.scores() for r in runs]
    print(f"baselines fitted and scored in {time.perf_counter() - t:.0f} s", flush=True)
    names = score_rankers(args.ranker, args.threads, markets, per_market, not args.no_zero_shot, args.zero_shot_slates)
    pools = [TaskPool.pool(t, markets, per_market) for t in EVAL_TASKS if all(t in m.held for m in markets)]
    results = [row for p in pools for seg in SEGMENTS for row in evaluate_segment(p, seg)]
    retained = [r for p in pools for n in names for seg in SEGMENTS if (r := retention(p, n, seg))]
    with threadpool_limits(1):
        lr_curve = [] if args.no_curve else lr_text_curve(runs)
    curve = lr_curve + [p for t in protocol.trained for p in ranker_curve(t, markets, results, args.threads)]
    extrapolated = extrapolate(curve, results, protocol.trained)
    OUT.mkdir(parents=True, exist_ok=True)
    plot_curve(curve, OUT / "ranker_learning_curve.png")
    counts = [r.counts(protocol.trained) for r in runs]
    held = evaluate_held_out_marketplace(args, protocol, runs) if args.held_out_marketplace else None
    report(protocol, results, retained, counts, curve, extrapolated, held, rerun, time.perf_counter() - t0)


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
