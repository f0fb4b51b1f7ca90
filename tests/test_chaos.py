"""`bench/chaos.py`, short: one fault of each kind (a worker SIGKILLed, both workers
SIGKILLed, failover to the other worker, a broker of three SIGKILLed and restarted, a
dead letter the broker refuses mid-batch) while a simulated marketplace streams in;
then every message produced is accounted for: nothing lost, nothing applied twice.

Starts its own three-node cluster (its brokers are killed), whatever KAFKA_BOOTSTRAP
says; about three minutes on two cores.
"""
from __future__ import annotations

import pytest

from bench import chaos

pytestmark = pytest.mark.kafka


def test_one_fault_of_each_kind_loses_nothing_and_applies_nothing_twice(tmp_path):
    config = chaos.ChaosConfig(iterations=len(chaos.FAULTS), rate=40, days=7, events_between=50,
                               data_dir=tmp_path)
    result = chaos.run(config, log=print, logs_dir=tmp_path / "logs")
    chaos.print_report(result)

    assert sorted(r.fault for r in result.recoveries) == sorted(chaos.FAULTS)
    produced = {kind: c["produced"] for kind, c in result.counts.items()}
    assert produced["action"] > 1000 and produced["upsert"] > 100 and produced["malformed"] > 5
    assert (result.lost, result.twice) == (0, 0), result.counts
    assert all(c["in DLQ"] == c["produced"] for kind, c in result.counts.items() if kind == "malformed")
    assert result.state_checks["different"] == 0
    assert all(t["holding an older event"] == t["missing"] == 0 for t in result.global_tables.values())
    # Every fault bit (the refused dead letter stopped its worker with exit 70) and no
    # worker stopped on its own.
    assert not result.anomalies, result.anomalies
    assert any(e["code"] == chaos.EXIT_FATAL for e in result.worker_exits)
