"""How often the crash/restart guarantee holds: run the stream-worker integration tests
(crash and restart, new disk, with the scoring-agent and producer tests before them for
a backlog) N times, each with its own broker, and count the runs that fail.

A timing bug shows up in a fraction of runs, not in one; this is how the faust start-up
fixes (`streams/faust_fixes.py`) were measured: 7 failures in 33 runs before, none after.

    .venv/bin/python bench/crash_loop.py --runs 10
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm
from models.cpu import cpu_name

REPO = Path(__file__).resolve().parents[1]
MODULES = ["tests/test_stream_worker.py", "tests/test_scoring_agent.py", "tests/test_producer.py"]


def one_run(basetemp: Path) -> tuple[bool, float, str]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *MODULES],
        cwd=REPO, capture_output=True, text=True,
    )
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    return proc.returncode == 0, time.monotonic() - start, failed[0] if failed else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    failures, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="crash-loop-") as tmp:
        for i in tqdm(range(args.runs), desc="runs", disable=None):
            ok, took, failed = one_run(Path(tmp) / f"run{i}")
            seconds.append(took)
            if not ok:
                failures.append(f"run {i}: {failed or 'see pytest output'}")
    table = Table(title="Stream-worker integration tests, repeated")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("runs", str(args.runs))
    table.add_row("failed runs", str(len(failures)))
    table.add_row("median seconds per run", f"{sorted(seconds)[len(seconds) // 2]:.0f}")
    Console().print(table)
    for line in failures:
        print(line)
    print(f"rerun: .venv/bin/python bench/crash_loop.py --runs {args.runs}")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
