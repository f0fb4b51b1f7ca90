"""A stream worker as a child process, with the read API the worker serves.

`make run`, the integration tests and `bench/ingest.py` all start, watch, crash and
stop workers through this one class.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from infra.broker import free_ports
from infra.waiting import wait_for
from streams.settings import REPO_ROOT
from streams.web_headers import COPY, FORWARDED_BY, SERVED_BY


@dataclass(frozen=True)
class Answer:
    """One answer of the read API."""

    status: int
    body: object
    headers: Mapping[str, str]  # case-insensitive (an HTTP message's): uvicorn sends lowercase names

    @property
    def served_by(self) -> str | None:  # the worker that read its table (streams.member_reads)
        return self.headers.get(SERVED_BY)

    @property
    def copy(self) -> str | None:  # "active" or "standby"
        return self.headers.get(COPY)

    @property
    def forwarded_by(self) -> str | None:
        return self.headers.get(FORWARDED_BY)


class WorkerProcess:
    def __init__(self, bootstrap: str, data_dir: Path, web_port: int, log_path: Path | None = None,
                 profile_path: Path | None = None, loglevel: str = "warning", command: str = "worker",
                 **settings: object):
        self.bootstrap = bootstrap
        self.data_dir = Path(data_dir)
        self.web_port = web_port
        self.log_path = log_path or self.data_dir / "worker.log"
        self.profile_path = profile_path  # cProfile stats written here when it stops
        self.loglevel = loglevel  # "info" logs faust's rebalances and table recovery
        self.settings = settings  # extra HIRESTREAM_* settings, e.g. broker_session_timeout=6
        self.command = command  # `hirestream worker`, or `serve` (the worker plus the scoring agent)
        if command == "serve" and "serving_http_port" not in settings:
            # The scoring HTTP API's default port (6067) is one per machine; two servers
            # at once (tests beside a benchmark, several in one test) would collide on it.
            self.settings["serving_http_port"] = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None

    # -- lifecycle
    def start(self) -> "WorkerProcess":
        env = dict(os.environ)
        env.update({
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "HIRESTREAM_DATA_DIR": str(self.data_dir),
            "HIRESTREAM_WEB_PORT": str(self.web_port),
        })
        env.update({f"HIRESTREAM_{k.upper()}": str(v) for k, v in self.settings.items()})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        profile = ["--profile", str(self.profile_path)] if self.profile_path else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", self.command, "--loglevel", self.loglevel, *profile],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 60.0) -> dict:
        return self.wait_for(lambda: self.stats(), timeout, "worker web API to answer")

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop: faust commits offsets and flushes tables on SIGTERM."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def crash(self) -> None:
        """SIGKILL: no commit, no flush, as a machine failure would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    # -- the read API
    @property
    def token(self) -> str | None:
        """The worker's HIRESTREAM_TOKEN, sent as a bearer token when set."""
        return str(self.settings["token"]) if "token" in self.settings else os.environ.get("HIRESTREAM_TOKEN")

    @property
    def url(self) -> str:
        """The worker's canonical URL: what its answers name in `X-Hirestream-Served-By`."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def scoring_url(self) -> str:
        """The scoring HTTP API of a `serve` worker."""
        return f"http://127.0.0.1:{self.settings['serving_http_port']}"

    def answer(self, path: str, method: str = "GET", token: str | None = None, body: dict | None = None,
               base: str | None = None) -> "Answer":
        """One request to the read API (or to `base`, e.g. `scoring_url`), with its status
        and headers (`token`: this one instead of the worker's own; `body`: sent as JSON).
        Raises URLError when nothing answers."""
        request = urllib.request.Request(f"{base or self.url}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={} if body is None else {"Content-Type": "application/json"})
        token = token if token is not None else self.token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return Answer(resp.status, json.loads(resp.read() or b"null"), resp.headers)
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            return Answer(err.code, parsed, err.headers)

    def _get(self, path: str, method: str = "GET") -> dict | None:
        """The body of a 2xx answer; None when the worker does not answer, does not know
        the key (404) or cannot answer yet (503: a partition being restored or moved)."""
        try:
            got = self.answer(path, method)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        if got.status in (404, 503):
            return None
        if got.status >= 400:
            raise RuntimeError(f"{method} {path} on {self.url}: {got.status} {got.body}")
        return got.body

    def stats(self) -> dict | None:
        return self._get("/stats/")

    def reset_stats(self) -> dict | None:
        return self._get("/stats/reset/", method="POST")

    def member(self, member_id: str) -> dict | None:
        """The member's state, from whichever worker owns it (streams.member_reads)."""
        return self._get(f"/members/{member_id}/")

    def member_answer(self, member_id: str, token: str | None = None, local: bool = False) -> "Answer":
        """The member read with its status and the headers that say who answered
        (`local`: this worker's own copy, active or standby, never forwarded)."""
        return self.answer(f"/members/{member_id}/" + ("?local=1" if local else ""), token=token)

    def job(self, job_id: str) -> dict | None:
        return self._get(f"/jobs/{job_id}/")

    def company(self, company_id: str) -> dict | None:
        return self._get(f"/companies/{company_id}/")

    def debug_tasks(self) -> dict | None:
        """What the worker's tasks wait on and what its consumer holds (`/debug/tasks/`)."""
        return self._get("/debug/tasks/")

    def debug_state(self) -> str:
        """`debug_tasks()` as text for failure messages; never raises."""
        try:
            state = self.debug_tasks() or {}
        except Exception as err:  # a wedged or dead worker: say so instead
            return f"(no /debug/tasks/: {err!r})"
        tasks = "\n".join(state.pop("tasks", []) + state.pop("consumer_thread_tasks", []))
        return f"{json.dumps(state, indent=1)}\n{tasks}"

    def wait_processed(self, n: int, timeout: float, desc: str = "worker") -> dict:
        """Wait until the worker has handled `n` events since its stats were last reset
        (applied, recognised as duplicates, or dead-lettered); return its stats."""
        from tqdm import tqdm

        bar = tqdm(total=n, desc=desc, unit="ev", disable=None)  # None: no bar when not a terminal

        def probe():
            s = self.stats() or {}
            bar.n = (s.get("processed_total", 0) + sum(s.get("duplicates", {}).values())
                     + sum(s.get("dead_letters", {}).values()))
            bar.refresh()
            return s if bar.n >= n else None
        try:
            return self.wait_for(probe, timeout, f"{n} events handled", interval=0.25)
        finally:
            bar.close()

    def wait_for(self, probe: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
        """`infra.waiting.wait_for`, failing at once (with the log) if the worker died."""
        def alive_probe():
            if not self.alive:
                raise RuntimeError(f"worker exited ({self.proc.returncode}) while waiting for {what}:\n"
                                   f"{self.log_tail()}")
            return probe()
        try:
            return wait_for(alive_probe, timeout, what, interval)
        except TimeoutError as err:
            raise TimeoutError(f"{err}; worker log:\n{self.log_tail()}\nworker state:\n{self.debug_state()}") from None
