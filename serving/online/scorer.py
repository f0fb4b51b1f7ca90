"""Scorers: one tiny surface over every ranking backend (vLLM-style).

    scorer = make_scorer("popularity")            # or "bm25", "ranker:artifacts/ranker-student", "vllm:<dir>"
    scores = scorer.score(member_state, candidates, task="apply", now=t, query=None)   # np.ndarray (K,)
    many = score_batch(scorer, [RankJob(state, candidates, "apply", t), ...])          # several members at once

A candidate is a job plus what the engine knew of it at scoring time (its retrieval
score and its past action counts), so a baseline never reaches into live state and
replay can never hand it a later count. Higher is better; ties keep candidate order.
Batching and shared-prefix reuse live inside the backends, never at call sites.
"""
from __future__ import annotations

import atexit
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from serving.online.catalog import POPULARITY_WEIGHTS
from streams.schemas import Job
from streams.state import MemberState


@dataclass(frozen=True)
class Candidate:
    job: Job
    retrieval_score: float = 0.0
    counts: Mapping[str, int] = field(default_factory=dict)  # the job's past actions, all members


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, member_state: MemberState, candidates: Sequence[Candidate], task: str,
              now: float, query: str | None = None) -> np.ndarray:
        """One float per candidate, higher = more likely to do `task`."""
        ...


@dataclass(frozen=True)
class RankJob:
    """One member's ranking inside a batch of several (the serving batcher's unit)."""

    member_state: MemberState
    candidates: Sequence[Candidate]
    task: str
    now: float
    query: str | None = None


def score_batch(scorer: Scorer, jobs: Sequence[RankJob]) -> list[np.ndarray]:
    """Scores for several members at once: one call where the backend can share work
    across them (`score_batch`: the LM ranker's one pass over their prefixes), a loop
    over `score` otherwise."""
    batched = getattr(scorer, "score_batch", None)
    if batched is not None:
        return batched(jobs)
    return [np.asarray(scorer.score(j.member_state, j.candidates, j.task, j.now, j.query), dtype=np.float64)
            for j in jobs]


# ---- baselines -------------------------------------------------------------------


class PopularityScorer:
    """What everyone engaged with so far (weighted clicks, saves, applies, dismisses)."""

    name = "popularity"
    task_aware = False  # the same order whatever the task: replay scores it once

    def score(self, member_state, candidates, task, now, query=None) -> np.ndarray:
        out = np.zeros(len(candidates), dtype=np.float64)
        for i, c in enumerate(candidates):
            raw = sum(POPULARITY_WEIGHTS.get(k, 0.0) * v for k, v in c.counts.items())
            out[i] = math.copysign(math.log1p(abs(raw)), raw)
        return out


class RetrievalScorer:
    """The index's own fused score (terms + embedding + learned links - penalties)."""

    name = "retrieval"
    task_aware = False

    def score(self, member_state, candidates, task, now, query=None) -> np.ndarray:
        return np.asarray([c.retrieval_score for c in candidates], dtype=np.float64)


_WORD = re.compile(r"[a-z0-9+#]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def member_words(state: MemberState, query: str | None = None) -> list[str]:
    """What a member says about themselves: profile, viewed and engaged jobs, searches, the query."""
    words: list[str] = []
    p = state.profile
    if p is not None:
        words += _words(p.title) + _words(p.occupation) * 2
        for s in p.skills:
            words += _words(s)
    for it in state.history:
        # a viewed job says what the member looks at: a job board's exports often hold
        # nothing else (an impression-only view counts too: it is in the member's feed)
        if it.action in ("view", "click", "save", "apply", "hired") and it.job is not None:
            words += _words(it.job.title)
        elif it.action == "search" and it.query:
            words += _words(it.query)
    if query:
        words += _words(query) * 2
    return words


def job_words(job: Job) -> list[str]:
    words = _words(job.title) + _words(job.occupation)
    for s in job.skills:
        words += _words(s)
    return words


class BM25Scorer:
    """Okapi BM25 of each job's text against the member's words (the query side).

    Document statistics come from the candidate list itself: the scorer sees nothing
    but what it is handed, which keeps it a pure function in replay."""

    name = "bm25"
    task_aware = False

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self._docs: dict[str, tuple[Job, Counter]] = {}  # job_id -> (job, its word counts)

    def _doc(self, job: Job) -> Counter:
        hit = self._docs.get(job.job_id)
        if hit is None or hit[0] is not job:  # an updated job is a new object
            hit = (job, Counter(job_words(job)))
            self._docs[job.job_id] = hit
        return hit[1]

    def score(self, member_state, candidates, task, now, query=None) -> np.ndarray:
        n = len(candidates)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        docs = [self._doc(c.job) for c in candidates]
        lengths = np.asarray([sum(d.values()) for d in docs], dtype=np.float64)
        avg = lengths.mean() if lengths.mean() > 0 else 1.0
        df: Counter = Counter()
        for d in docs:
            df.update(d.keys())
        q = Counter(member_words(member_state, query))
        out = np.zeros(n, dtype=np.float64)
        for term, qtf in sorted(q.items()):  # sorted: the same float sum order every run
            if term not in df:
                continue
            idf = math.log(1.0 + (n - df[term] + 0.5) / (df[term] + 0.5))
            for i, d in enumerate(docs):
                tf = d.get(term, 0)
                if tf:
                    norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * lengths[i] / avg))
                    out[i] += idf * norm * (1 + math.log(qtf))
        return out


# ---- the LM ranker ---------------------------------------------------------------


def member_prefix(prompts, state: MemberState, now: float, query: str | None) -> str:
    """A member's prompt prefix under a checkpoint's own prompt budget (tokens, newest
    history kept: the prompts it saw in training); `prompts` is a `Ranker` or its
    weightless `RankerPrompts`."""
    if state.profile is None:
        raise ValueError(f"member {state.member_id!r} has no profile: the ranker needs one")
    return prompts.member_prefix(state.profile, state.history, now, query=query)


class RankerScorer:
    """The 360Brew Yes/No ranker in process (torch): one member prefix, every candidate
    as a segment over its KV cache (`models.multi_item`), p(Yes) per candidate."""

    def __init__(self, ranker, name: str = "ranker", method: str = "prefix_cache"):
        self.ranker = ranker
        self.name = name
        self.method = method

    @classmethod
    def load(cls, path: str | Path, name: str | None = None, device: str | None = None) -> "RankerScorer":
        from models.ranker import Ranker

        return cls(Ranker.load(path, device=device), name=name or f"ranker:{Path(path).name}")

    def prefix(self, state: MemberState, now: float, query: str | None) -> str:
        return member_prefix(self.ranker, state, now, query)

    def score(self, member_state, candidates, task, now, query=None) -> np.ndarray:
        return self.score_tasks(member_state, candidates, [task], now, query)[task]

    def score_tasks(self, member_state, candidates, tasks, now, query=None) -> dict[str, np.ndarray]:
        """Every task of every candidate from one pass over the member's prefix."""
        if not candidates:
            return {t: np.zeros(0, dtype=np.float64) for t in tasks}
        p = self.ranker.score_tasks(self.prefix(member_state, now, query), [c.job for c in candidates],
                                    list(tasks), method=self.method)
        return {t: np.asarray(p[:, i], dtype=np.float64) for i, t in enumerate(tasks)}

    def warm(self, jobs: Sequence[Job]) -> int:
        """Compute the jobs' cached states ahead of their first request (a checkpoint
        that reads jobs alone, `models.job_states`); how many jobs, 0 for other checkpoints."""
        states = self.ranker.job_states
        if states is None or not jobs:
            return 0
        states.warm(self.ranker.encode_jobs(jobs))
        return len(jobs)

    def score_batch(self, jobs: Sequence[RankJob]) -> list[np.ndarray]:
        """Several members in one pass per task (`Ranker.score_many`): each prefix once,
        all their candidates as segments in shared batches."""
        out: list[np.ndarray | None] = [None] * len(jobs)
        by_task: dict[str, list[int]] = {}
        prefixes: dict[int, str] = {}
        for i, job in enumerate(jobs):
            if not job.candidates:
                out[i] = np.zeros(0, dtype=np.float64)
            else:
                prefixes[i] = self.prefix(job.member_state, job.now, job.query)  # refuses a member without a profile
                by_task.setdefault(job.task, []).append(i)
        for task, idx in by_task.items():
            requests = [(prefixes[i], [c.job for c in jobs[i].candidates]) for i in idx]
            for i, p in zip(idx, self.ranker.score_many(requests, [task])):
                out[i] = np.asarray(p[:, 0], dtype=np.float64)
        return out  # type: ignore[return-value]


class VLLMScorer:
    """The in-process ranker's prompts, scored by vLLM's OpenAI-compatible server.

        scorer = make_scorer("vllm:artifacts/ranker-pruned")   # starts a server from .venv-vllm
        scorer = VLLMScorer("artifacts/ranker-pruned", url="http://127.0.0.1:8000")  # one already running

    Each (candidate, task) is the one-task prompt `prefix + body + marker` that the
    torch ranker reads, sent as token ids (`RankerPrompts.prompt_ids`: the same ids
    whatever the server's tokenizer would make of the text) to `/v1/completions` with
    `max_tokens=1`; the server returns the log-probabilities of the " Yes" and " No"
    tokens by id (`logprob_token_ids`, so neither can fall out of a top-k list), and

        p(Yes) = softmax([logprob(Yes), logprob(No)])[0]

    which equals the ranker's softmax over the two logits (the log-partition cancels).
    All of a call's prompts go in one request: the server batches them, and with
    prefix caching each member's prefix is computed once across its candidates.
    The checkpoint folder serves as it is: training installs the trained Yes/No rows
    in an untied LM head (`Ranker.install_answer_head`), which vLLM loads.
    """

    def __init__(self, model_dir: str | Path, url: str | None = None, name: str | None = None,
                 timeout: float = 300.0, **server_settings):
        from models.ranker import RankerPrompts

        self.model_dir = Path(model_dir)
        self.prompts = RankerPrompts.load_prompts(self.model_dir)
        # A trimmed vocabulary is served as it is: the prompts are sent as the model's own
        # ids and the answers read by the model's Yes/No ids (`RankerPrompts` renumbers
        # both), so the server's tokenizer, with its 49,152 ids, only names the one token
        # it samples. An int8 (W8A8) checkpoint is served from the copy of its integers
        # it holds in vLLM's format; vLLM's CPU build has no kernel for the other recipes.
        from models.quantization import VLLM_DIR

        meta = self.prompts.meta
        served = self.model_dir
        if self.prompts.body_position is not None:
            # vLLM reads plain causal prompts: the body would read the member it never saw in training.
            raise ValueError(f"{self.model_dir} reads jobs alone (ranker.json body_position), a block mask vLLM "
                             f"cannot take: serve it as ranker:{self.model_dir} (its job states are cached there)")
        if meta.get("quantization"):
            served = self.model_dir / VLLM_DIR
            if not (served / "config.json").exists():
                raise ValueError(f"{self.model_dir} is a {meta['quantization']} checkpoint without a {VLLM_DIR}/ "
                                 "copy (vLLM's CPU build multiplies int8 weights only with int8 activations: "
                                 "the int8 recipe), which only the in-process scorer reads: serve it as "
                                 f"ranker:{self.model_dir}, or the checkpoint it was made from "
                                 f"({meta.get('quantized_from', '?')}) through vLLM, or make an int8 one")
        self.name = name or f"vllm:{self.model_dir.name}"
        self.timeout = timeout
        self.server = None  # the server this scorer started (and stops on close), if any
        url = url or os.environ.get(VLLM_URL_ENV)
        if not url:
            from infra.vllm_server import ServerConfig, start

            settings = {"max_model_len": self.max_prompt_tokens(), "served_name": self.model_dir.name,
                        **server_settings}
            self.server = start(ServerConfig(model_dir=served, **settings), timeout=timeout)
            atexit.register(self.close)  # a process that forgets close() still stops it cleanly
            url = self.server.url
        self.url = url.rstrip("/")
        try:
            self.served_model = self._served_model()
        except BaseException:
            self.close()
            raise

    def max_prompt_tokens(self) -> int:
        """The longest prompt the checkpoint's budgets allow (the server's max-model-len),
        rounded up to vLLM's 16-token KV blocks."""
        from models.verbalizer import TASKS

        marker = max(len(m) for m in self.prompts.encode_markers(TASKS))
        n = self.prompts.budget.max_prefix_tokens + self.prompts.budget.max_segment_tokens + marker
        return -(-n // 16) * 16

    def _served_model(self) -> str:
        from infra.vllm_server import get_json

        models = get_json(self.url + "/v1/models", timeout=30.0)["data"]
        if not models:
            raise RuntimeError(f"the vLLM server at {self.url} serves no model")
        return models[0]["id"]

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> "VLLMScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prefix(self, state: MemberState, now: float, query: str | None) -> str:
        return member_prefix(self.prompts, state, now, query)

    def score(self, member_state, candidates, task, now, query=None) -> np.ndarray:
        return self.score_tasks(member_state, candidates, [task], now, query)[task]

    def score_tasks(self, member_state, candidates, tasks, now, query=None) -> dict[str, np.ndarray]:
        if not candidates:
            return {t: np.zeros(0, dtype=np.float64) for t in tasks}
        ids = self.prompts.prompt_ids(self.prefix(member_state, now, query), [c.job for c in candidates], list(tasks))
        p = self.p_yes(ids).reshape(len(candidates), len(tasks))
        return {t: p[:, i] for i, t in enumerate(tasks)}

    def score_batch(self, jobs: Sequence[RankJob]) -> list[np.ndarray]:
        """Several members' prompts in one request: the server batches them all."""
        prompts = [self.prompts.prompt_ids(self.prefix(j.member_state, j.now, j.query), [c.job for c in j.candidates],
                                           [j.task]) if j.candidates else [] for j in jobs]
        p = self.p_yes([ids for group in prompts for ids in group])
        return list(np.split(p, np.cumsum([len(g) for g in prompts])[:-1])) if jobs else []

    def p_yes(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """p(Yes) of each prompt (token ids), from one /v1/completions request."""
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        from infra.vllm_server import post_json

        yes, no = self.prompts.yes_id, self.prompts.no_id
        reply = post_json(self.url + "/v1/completions", {
            "model": self.served_model, "prompt": [list(map(int, ids)) for ids in prompts],
            # vLLM wants `logprobs` set, equal to the number of ids asked for by id
            "max_tokens": 1, "temperature": 0.0, "logprobs": 2, "logprob_token_ids": [yes, no],
            "return_tokens_as_token_ids": True,
        }, timeout=self.timeout)
        choices = sorted(reply["choices"], key=lambda c: c["index"])
        if len(choices) != len(prompts):
            raise RuntimeError(f"{self.url} answered {len(choices)} choices for {len(prompts)} prompts")
        out = np.empty(len(prompts), dtype=np.float64)
        for i, choice in enumerate(choices):
            lp = answer_logprobs(choice, (yes, no))
            # softmax over the two with the checkpoint's answer offset, as models.ranker.p_yes
            out[i] = 1.0 / (1.0 + math.exp(lp[1] - lp[0] - self.prompts.answer_offset))
        return out


VLLM_URL_ENV = "HIRESTREAM_VLLM_URL"  # a running server to use instead of starting one


def answer_logprobs(choice: dict, token_ids: Sequence[int]) -> list[float]:
    """The log-probabilities of `token_ids` at a completion's first position, from its
    `logprobs.top_logprobs` (keys "token_id:<id>", as `return_tokens_as_token_ids` names them)."""
    top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
    missing = [t for t in token_ids if f"token_id:{t}" not in top]
    if missing:
        raise RuntimeError(f"the vLLM server returned no log-probability for token ids {missing} "
                           f"(got {sorted(top)[:8]}); it needs `logprob_token_ids` (vLLM >= 0.32)")
    return [float(top[f"token_id:{t}"]) for t in token_ids]


# ---- construction by name (FAISS-style factory strings) --------------------------


def make_scorer(spec: str) -> Scorer:
    """'popularity' | 'bm25' | 'retrieval' | 'ranker:<checkpoint dir>' | 'vllm:<checkpoint dir>'
    (a vLLM server from .venv-vllm for that checkpoint, or the one at $HIRESTREAM_VLLM_URL)."""
    kind, _, arg = spec.partition(":")
    if kind == "popularity" and not arg:
        return PopularityScorer()
    if kind == "bm25" and not arg:
        return BM25Scorer()
    if kind == "retrieval" and not arg:
        return RetrievalScorer()
    if kind == "ranker" and arg:
        return RankerScorer.load(arg)
    if kind == "vllm" and arg:
        return VLLMScorer(arg)
    raise ValueError(f"unknown scorer spec {spec!r}; expected popularity, bm25, retrieval, "
                     "ranker:<checkpoint dir> or vllm:<checkpoint dir>")
