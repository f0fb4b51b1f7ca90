"""`hirestream run` stopped by SIGTERM stops the broker and the worker it started: an
orphaned worker reconnected to the next run's broker on the same ports, and that run's
worker failed on a changelog produce (OutOfOrderSequenceNumber)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from infra.broker import free_ports, port_open
from infra.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent


def started_under(data_dir: Path) -> list[int]:
    """Processes whose HIRESTREAM_DATA_DIR lies under `data_dir` (the broker inherits the
    run's; the worker gets its own below it), the run itself left out by the caller."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"HIRESTREAM_DATA_DIR={data_dir}".encode()) for v in env):
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its exited parent's reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "(zombie)" not in status


def consecutive_free_port() -> int:
    """A port whose next one up is free too (the broker's KRaft controller takes it)."""
    return next(p for p in free_ports(20) if not port_open("127.0.0.1", p + 1))


def test_sigterm_stops_the_broker_and_worker_it_started(tmp_path):
    port, web = consecutive_free_port(), free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update({"HIRESTREAM_DATA_DIR": str(tmp_path), "HIRESTREAM_BROKER_LISTEN": f"127.0.0.1:{port}",
                "HIRESTREAM_WEB_PORT": str(web)})
    run = subprocess.Popen([sys.executable, "-m", "infra.cli", "run", "--events", "3000"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    children = []
    try:
        # the worker answers on its web port once it is up; the broker answered before it started
        wait_for(lambda: port_open("127.0.0.1", web), 120, "the run's worker to answer")
        children = [pid for pid in started_under(tmp_path) if pid != run.pid]
        assert len(children) >= 2  # the broker and the worker
        run.send_signal(signal.SIGTERM)
        run.wait(90)
        wait_for(lambda: not [pid for pid in children if alive(pid)], 90, "the broker and worker to stop with the run")
    finally:
        for pid in started_under(tmp_path):  # whatever is left, so that no later test meets it
            os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
