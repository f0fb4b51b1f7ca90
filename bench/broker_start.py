"""How long the project's Kafka broker takes to become usable, on this machine.

Measures, for a fresh private broker on free loopback ports: formatting the KRaft
store, process start to first answer, creating the map's topics, and a clean stop.
The reference is a bare JVM start (`java -version`) timed in the same run, so the
ratio says how much of the wait is Kafka rather than Java.

    .venv/bin/python bench/broker_start.py [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra import broker
from models.cpu import cpu_name


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def one_run(libs: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        port, controller_port = broker.free_ports(2)
        cfg = broker.BrokerConfig(data_dir=Path(tmp), port=port, controller_port=controller_port,
                                  die_with_parent=True)
        row = {"format (KRaft store)": timed(lambda: broker.prepare(cfg, libs))}
        try:
            row["start → answers"] = timed(lambda: broker.start(cfg, libs, timeout=120))
            row["create 14 topics"] = timed(lambda: broker.create_topics(cfg.bootstrap))
        finally:
            row["stop (SIGTERM → exit)"] = timed(lambda: broker.stop(cfg))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    libs = broker.fetch_jars()
    jvm = statistics.median(
        timed(lambda: subprocess.run(["java", "-version"], capture_output=True, check=True))
        for _ in range(args.runs)
    )
    rows = [one_run(libs) for _ in range(args.runs)]
    table = Table(title=f"Kafka {broker.kafka_version()} single-node broker, "
                        f"median of {args.runs} runs (reference: bare JVM start {jvm:.2f} s)")
    for col in ("step", "median s", "min s", "max s", "× JVM start"):
        table.add_column(col, justify="right" if col != "step" else "left")
    for step in rows[0]:
        values = [r[step] for r in rows]
        med = statistics.median(values)
        table.add_row(step, f"{med:.2f}", f"{min(values):.2f}", f"{max(values):.2f}", f"{med / jvm:.1f}")
    Console().print(table)
    print("rerun: .venv/bin/python bench/broker_start.py --runs", args.runs)


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
