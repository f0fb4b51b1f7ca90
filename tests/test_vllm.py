"""The vLLM backend: its own environment, made only when asked; a server the project
starts, health-checks and stops like the broker; and scores equal to the in-process
torch ranker's on the same prompts.

Tests marked `needs_vllm` skip, saying why, where `.venv-vllm` is absent (`make vllm`
creates it); the others check the plumbing around the server without it.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from infra import vllm_env
from infra.vllm_server import SHM, ServerConfig, VLLMServerError, start
from models.ranker import PromptBudget, Ranker, StudentConfig, default_artifacts_dir, load_tokenizer, student_model
from serving.online.scorer import Candidate, RankerScorer, RankJob, VLLMScorer, make_scorer, score_batch
from streams.state import apply_member_event
from tests import factories as f

REPO = Path(__file__).resolve().parent.parent
MISSING = vllm_env.missing_reason()
needs_vllm = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
# A trained checkpoint to check too, where one is at hand (git-ignored; not in a clean checkout).
REAL_CHECKPOINT = Path(os.environ.get("HIRESTREAM_TEST_RANKER", default_artifacts_dir() / "ranker-pruned"))

# head_dim 64: vLLM's CPU attention takes 32..256, not the 16 of tests/test_ranker.py's TINY.
SMALL = StudentConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=1024)
TASKS = ["apply", "click", "dismiss"]
# vLLM's int8 kernels quantize each token's activations on a grid of absmax/127, torchao's
# on absmax/127.5: the same weights, slightly different activation integers. Measured
# 0.009 at most (against 0.023 between the int8 and float models), loosened.
INT8_ATOL = 0.015


def members():
    """Three members with different profiles and histories (the prefixes differ)."""
    jobs = {j.job_id: j for j in JOBS}
    lookup = jobs.get
    out = []
    for i, (title, occupation, skills, acts) in enumerate([
        ("Data Engineer", "data engineer", ["Python", "SQL"], [("apply", "j1"), ("view", "j3")]),
        ("Pastry Chef", "pastry chef", ["Baking"], [("save", "j2"), ("dismiss", "j4")]),
        ("Nurse", "registered nurse", ["Patient care", "ICU"], []),
    ]):
        mid = f"m{i}"
        state = apply_member_event(None, f.member_upserted(f"u{i}", member_id=mid, title=title,
                                                           occupation=occupation, skills=skills), lookup)
        for n, (action, job_id) in enumerate(acts):
            reason = "wrong_location" if action == "dismiss" else None
            state = apply_member_event(state, f.action(f"a{i}{n}", action, hours=n + 1, member_id=mid,
                                                       job_id=job_id, reason=reason), lookup)
        out.append(state)
    return out


JOBS = [
    f.job("j1"),
    f.job("j2", title="Pastry Chef", occupation="pastry chef", skills=["Baking"], location="Rome"),
    f.job("j3", title="Data Analyst", occupation="data analyst", skills=["SQL", "Excel"]),
    f.job("j4", title="ICU Nurse", occupation="registered nurse", skills=["ICU"], location="Austin"),
    f.job("j5", title="Welder", occupation="welder", skills=["TIG welding"], description="Night shifts."),
    f.job("j6", title="Backend Engineer", occupation="software engineer", skills=["Go", "Kafka"]),
]
CANDS = [Candidate(j) for j in JOBS]
NOW = f.at(48).timestamp()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small ranker checkpoint with Yes/No head rows of its own, installed untied as
    training installs them (so a server that read the tied embedding would disagree).
    Random blocks give nearly the same last hidden state for every prompt, so the rows
    are set along the direction in which these tests' prompts differ most: scores
    spread over (0, 1) instead of all sitting at one value."""
    from models.multi_item import last_hidden_of_prompts

    try:
        tokenizer = load_tokenizer()
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"no SmolLM2 tokenizer here: {err}")
    torch.set_num_threads(1)
    ranker = Ranker(student_model(tokenizer, SMALL, seed=1), tokenizer,
                    PromptBudget(max_prefix_tokens=200, max_segment_tokens=64))
    ids = [p for s in members() for p in ranker.prompt_ids(ranker.member_prefix(s.profile, s.history, NOW),
                                                            JOBS, TASKS)]
    with torch.no_grad():
        hidden = last_hidden_of_prompts(ranker.model, ids)
        mean = hidden.mean(0)
        direction = torch.linalg.svd(hidden - mean, full_matrices=False).Vh[0]
        direction -= (direction @ mean) / (mean @ mean) * mean  # the mean prompt scores 0.5
        direction /= ((hidden - mean) @ direction).std()  # logit gap of std 2
    ranker.install_answer_head(torch.stack([direction, -direction]))
    return ranker.save(tmp_path_factory.mktemp("vllm") / "small-ranker")


# ---- without .venv-vllm ------------------------------------------------------------------


def test_make_run_and_make_test_never_build_the_vllm_env():
    makefile = (REPO / "Makefile").read_text()
    recipes = dict(re.findall(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)*)", makefile, re.M))
    assert "vllm_env.py" in recipes["vllm"]
    for target in ("setup", "run", "test", "test-quick"):
        assert "vllm" not in recipes[target], target
    assert "vllm" not in (REPO / "infra" / "setup.sh").read_text()
    assert ".venv-vllm/" in (REPO / ".gitignore").read_text().splitlines()


def test_without_the_env_the_scorer_says_how_to_make_it(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(vllm_env, "VENV", tmp_path / ".venv-vllm")
    monkeypatch.delenv("HIRESTREAM_VLLM_URL", raising=False)
    assert vllm_env.missing_reason() == ".venv-vllm is absent (the vLLM backend's own environment): " \
                                        "run `make vllm` to create it"
    with pytest.raises(VLLMServerError, match=r"cannot start vLLM for .*small-ranker: \.venv-vllm is absent"):
        make_scorer(f"vllm:{checkpoint}")


def fake_python(tmp_path: Path, body: str) -> Path:
    """An executable standing in for .venv-vllm's python: `body` runs instead of the server."""
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/bash\n{body}\n")
    exe.chmod(0o755)
    return exe


def test_a_server_that_dies_fails_the_start_with_its_log(checkpoint, tmp_path):
    cfg = ServerConfig(checkpoint, python=Path(sys.executable), log_path=tmp_path / "server.log")
    with pytest.raises(VLLMServerError, match=r"exited with rc 1 before answering /health") as err:
        start(cfg, timeout=60)
    assert "No module named 'vllm'" in str(err.value)  # the log's tail, in the error


def _group_alive(pgid: int) -> bool:
    from infra.vllm_server import _group_members

    return bool(_group_members(pgid))


def test_a_server_that_never_answers_times_out_and_is_killed_with_its_children(checkpoint, tmp_path):
    # It ignores SIGTERM and has a child: stop must SIGKILL the whole group.
    python = fake_python(tmp_path, "trap '' TERM\necho 'loading weights...'\nsleep 600 & wait")
    cfg = ServerConfig(checkpoint, python=python, log_path=tmp_path / "server.log")
    with pytest.raises(VLLMServerError, match=r"did not answer /health on http://127\.0\.0\.1:\d+ within 2 s") as err:
        start(cfg, timeout=2, stop_timeout=1)
    assert "loading weights..." in str(err.value)  # the log's tail, in the error
    pid = int(re.search(r"\(pid (\d+)\)", str(err.value)).group(1))
    assert not _group_alive(pid)


def test_stop_removes_the_shared_memory_it_leaked_and_only_that(checkpoint, tmp_path):
    ours, held = f"psm_hirestream_test_{os.getpid()}", f"psm_hirestream_held_{os.getpid()}"
    # A "server" that answers /health, leaves one object behind on exit, and leaves
    # alone one that another process (this test) holds open.
    body = (f": > {SHM}/{ours}\n: > {SHM}/{held}\n"
            f"exec {sys.executable} -c \"import http.server, sys; port = int(sys.argv[sys.argv.index('--port') + 1]);"
            f"http.server.ThreadingHTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)"
            f".serve_forever()\" \"$@\"")
    cfg = ServerConfig(checkpoint, python=fake_python(tmp_path, body), log_path=tmp_path / "server.log")
    (tmp_path / "health").write_text("ok")  # SimpleHTTPRequestHandler serves its cwd: the log's folder
    server = start(cfg, timeout=30)
    try:
        handle = open(SHM / held, "rb")
        assert server.stop(timeout=10) == [ours]
        assert not (SHM / ours).exists() and (SHM / held).exists()
        assert not _group_alive(server.pid)
    finally:
        handle.close()
        (SHM / held).unlink(missing_ok=True)
        (SHM / ours).unlink(missing_ok=True)


class _FakeCompletions(BaseHTTPRequestHandler):
    """A stand-in OpenAI server: logprob(Yes) and logprob(No) of prompt i are given by
    `answer(i, ids)`; choices come back in reverse order (a client must sort them)."""

    answer = staticmethod(lambda i, ids: {})
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"data": [{"id": "small-ranker"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        choices = [{"index": i, "text": "", "logprobs": {"top_logprobs": [self.answer(i, ids)]}}
                   for i, ids in enumerate(body["prompt"])]
        self._send({"choices": choices[::-1]})


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeCompletions.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_the_scorer_sends_the_rankers_prompt_ids_and_reads_p_yes_by_token_id(checkpoint, fake_server, monkeypatch):
    scorer = VLLMScorer(checkpoint, url=fake_server)
    yes, no = scorer.prompts.yes_id, scorer.prompts.no_id
    rng = np.random.default_rng(0)
    lp = rng.uniform(-12, -0.1, size=(len(CANDS) * 2, 2))
    monkeypatch.setattr(_FakeCompletions, "answer", staticmethod(
        lambda i, ids: {f"token_id:{yes}": lp[i, 0], f"token_id:{no}": lp[i, 1], "token_id:13": -0.01}))
    state = members()[0]
    got = scorer.score_tasks(state, CANDS, ["apply", "click"], NOW)
    want = 1 / (1 + np.exp(lp[:, 1] - lp[:, 0]))  # softmax over the two logprobs
    np.testing.assert_allclose(got["apply"], want[0::2], rtol=1e-12)
    np.testing.assert_allclose(got["click"], want[1::2], rtol=1e-12)
    (request,) = _FakeCompletions.requests
    # the ids the torch ranker reads (multi_item.score_one_by_one): prefix + body + marker
    prompts = scorer.prompts
    prefix = prompts.encode_prefix(prompts.member_prefix(state.profile, state.history, NOW))
    bodies, markers = prompts.encode_jobs(JOBS), prompts.encode_markers(["apply", "click"])
    assert request["prompt"] == [prefix + body + marker for body in bodies for marker in markers]
    assert request["logprob_token_ids"] == [yes, no] and request["logprobs"] == 2 and request["max_tokens"] == 1
    assert request["model"] == "small-ranker"
    # a server that leaves a token out is an error that says which, never a guess
    monkeypatch.setattr(_FakeCompletions, "answer", staticmethod(lambda i, ids: {f"token_id:{yes}": -1.0}))
    with pytest.raises(RuntimeError, match=rf"no log-probability for token ids \[{no}\]"):
        scorer.score(state, CANDS, "apply", NOW)


# ---- with .venv-vllm: a real server --------------------------------------------------------


def _leftovers(server) -> list[str]:
    from infra.vllm_server import held_shared_memory, shared_memory_objects

    return sorted((shared_memory_objects() - server.shm_before) - held_shared_memory())


def _assert_equal_to_torch(scorer: VLLMScorer, reference: RankerScorer, states, tasks, atol: float = 1e-3) -> np.ndarray:
    """vLLM's p(Yes) against the in-process ranker's, every member x candidate x task."""
    got, want = [], []
    for state in states:
        v, t = scorer.score_tasks(state, CANDS, tasks, NOW), reference.score_tasks(state, CANDS, tasks, NOW)
        for task in tasks:
            got.append(v[task])
            want.append(t[task])
    got, want = np.concatenate(got), np.concatenate(want)
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    return want


@pytest.mark.slow
@needs_vllm
def test_vllm_scores_equal_the_torch_rankers(checkpoint):
    torch.set_num_threads(1)
    reference = RankerScorer(Ranker.load(checkpoint, device="cpu"))
    with make_scorer(f"vllm:{checkpoint}") as scorer:
        server = scorer.server
        assert server.healthy()
        want = _assert_equal_to_torch(scorer, reference, members(), TASKS)
        assert want.std() > 0.05  # the scores differ from each other: the equality says something
        # the trained head rows are what vLLM reads: the tied embedding's rows would score otherwise
        tied = Ranker.load(checkpoint, device="cpu")
        tied.install_answer_head(tied.model.get_input_embeddings().weight[[tied.yes_id, tied.no_id]])
        assert np.abs(RankerScorer(tied).score(members()[0], CANDS, "apply", NOW)
                      - scorer.score(members()[0], CANDS, "apply", NOW)).max() > 0.01
        # several members in one request, as the serving batcher calls it
        jobs = [RankJob(s, CANDS[i:], task, NOW) for i, (s, task) in enumerate(zip(members(), TASKS))]
        jobs.append(RankJob(members()[0], [], "apply", NOW))
        for job, got in zip(jobs, score_batch(scorer, jobs)):
            np.testing.assert_allclose(got, reference.score(job.member_state, job.candidates, job.task, NOW),
                                       atol=1e-3, rtol=0)
        assert score_batch(scorer, jobs)[-1].shape == (0,)
    assert server.returncode is not None and not _group_alive(server.pid)
    assert _leftovers(server) == []


@pytest.mark.slow
@needs_vllm
def test_vllm_serves_a_trimmed_vocabulary_as_the_torch_ranker_scores_it(checkpoint, tmp_path):
    """A trimmed checkpoint (issue 16) through vLLM: the prompts go as the model's own
    ids, the answers are read by its Yes/No ids. Kept: the ids of the first member's
    prompts only, so the others' text is spelled in pieces of the kept ids."""
    torch.set_num_threads(1)
    ranker = Ranker.load(checkpoint, device="cpu")
    first = members()[0]
    used = {i for ids in ranker.prompt_ids(ranker.member_prefix(first.profile, first.history, NOW), JOBS[:2], TASKS)
            for i in ids}
    ranker.trim_vocabulary(used | {ranker.yes_id, ranker.no_id})
    assert ranker.model.get_input_embeddings().weight.shape[0] < len(ranker.tokenizer) // 10
    trimmed = ranker.save(tmp_path / "trimmed-ranker")
    reference = RankerScorer(Ranker.load(trimmed, device="cpu"))
    with make_scorer(f"vllm:{trimmed}") as scorer:
        want = _assert_equal_to_torch(scorer, reference, members(), TASKS)
        assert want.std() > 0.05


@pytest.mark.slow
@needs_vllm
def test_vllm_serves_an_int8_checkpoint_as_the_torch_ranker_scores_it(checkpoint, tmp_path):
    """An `int8` checkpoint (issue 16) through vLLM's own int8 kernels: the server reads
    the integers the checkpoint keeps in its vllm/ folder, the same ones the in-process
    ranker multiplies, so its scores sit with that ranker's: on average at least twice
    as close to them as to the float model's (the largest differences per member: 2.4-4.5x closer)."""
    from models.multi_item import last_hidden_of_prompts
    from models.quantization import VLLM_DIR, quantize

    torch.set_num_threads(1)
    ranker = Ranker.load(checkpoint, device="cpu")
    prompts = [p for s in members() for p in ranker.prompt_ids(ranker.member_prefix(s.profile, s.history, NOW),
                                                                JOBS, TASKS)]
    quantize(ranker.model, "int8", dtype=torch.float32, calibrate=lambda m: last_hidden_of_prompts(m, prompts))
    ranker.meta.update({"quantization": "int8", "quantized_from": str(checkpoint)})
    out = ranker.save(tmp_path / "int8-ranker")
    assert (out / VLLM_DIR / "model.safetensors").exists()
    int8, plain = RankerScorer(Ranker.load(out, device="cpu")), RankerScorer(Ranker.load(checkpoint, device="cpu"))

    def scores(scorer) -> np.ndarray:
        return np.concatenate([scorer.score_tasks(s, CANDS, TASKS, NOW)[t] for s in members() for t in TASKS])

    with make_scorer(f"vllm:{out}") as scorer:
        assert scorer.served_model == "int8-ranker"
        served = scores(scorer)
    want, floats = scores(int8), scores(plain)
    np.testing.assert_allclose(served, want, atol=INT8_ATOL, rtol=0)
    assert want.std() > 0.05
    assert np.abs(served - want).mean() < np.abs(served - floats).mean() / 2


@pytest.mark.slow
@needs_vllm
@pytest.mark.skipif(not (REAL_CHECKPOINT / "config.json").exists(),
                    reason=f"no trained ranker at {REAL_CHECKPOINT} (git-ignored; set HIRESTREAM_TEST_RANKER)")
def test_vllm_scores_equal_the_torch_rankers_on_a_trained_checkpoint():
    """Float, trimmed or int8 (served from its W8A8 copy; measured 0.013 at most on
    ranker-thin's, whose float parts compute in bf16 in process)."""
    torch.set_num_threads(2)
    reference = RankerScorer(Ranker.load(REAL_CHECKPOINT, device="cpu"))
    atol = INT8_ATOL if reference.ranker.meta.get("quantization") == "int8" else 1e-3
    with make_scorer(f"vllm:{REAL_CHECKPOINT}") as scorer:
        want = _assert_equal_to_torch(scorer, reference, members(), ["apply", "click"], atol=atol)
        assert want.std() > 0.01
