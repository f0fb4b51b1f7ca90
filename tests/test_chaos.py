"""`bench/chaos.py`, short: one fault of each kind (a worker SIGKILLed, both workers
SIGKILLed, failover to the other worker, a broker of three SIGKILLed and restarted, a
dead letter the broker refuses mid-batch) while a simulated marketplace streams in;
then every message produced is accounted for: nothing lost, nothing applied twice.

Starts its own three-node cluster (its brokers are killed), whatever KAFKA_BOOTSTRAP
says; about three minutes on two cores.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from bench import chaos
from bench.chaos import Sent


def test_the_accounting_sees_every_loss_and_every_double_application():
    """The benchmark's verdicts on hand-made outcomes: a checker that cannot see a loss
    or a duplicate would report zeros whatever happened."""
    profile = {"member_id": "m1", "title": "Data Engineer"}
    sent = [
        Sent("action", "member-actions", "m1", "e1", partition=0, offset=10),  # applied once
        Sent("action", "member-actions", "m1", "e2", partition=0, offset=11),  # applied twice
        Sent("action", "member-actions", "m1", "e3", partition=0, offset=12),  # lost
        Sent("action", "member-actions", "m1", "e4", partition=0, offset=13),  # dead-lettered
        Sent("action", "member-actions", "m1", "e5", partition=0, offset=14),  # in m2's state
        Sent("hire", "hires", "m1", "e6", partition=0, offset=3),  # applied and dead-lettered
        Sent("action", "member-actions", "m1", "e7"),  # the producer never delivered it
        Sent("upsert", "members", "m1", "u1", json.dumps(profile), partition=0, offset=5),  # applied
        Sent("upsert", "members", "m2", "u2", json.dumps(profile), partition=1, offset=6),  # lost
        Sent("malformed", "member-actions", "m1", "bad-1", partition=0, offset=20),  # in its DLQ
        Sent("malformed", "member-actions", "m1", "bad-2", partition=0, offset=21),  # in its DLQ twice
        Sent("malformed", "member-actions", "m1", "bad-3", partition=0, offset=22),  # lost
        Sent("malformed", "member-actions", "m1", "bad-4", partition=0, offset=23),  # applied
    ]
    history = lambda *ids: [{"event_id": i} for i in ids]  # noqa: E731
    members = {
        "m1": {"profile": profile, "applied_offsets": {"members:0": 5},
               "history": history("e1", "e2", "e2", "e6", "bad-4")},
        "m2": {"profile": {**profile, "title": "other"}, "applied_offsets": {"members:1": 6},
               "history": history("e5")},
    }
    dead = Counter({("member-actions", 0, 13): 1, ("hires", 0, 3): 1, ("member-actions", 0, 20): 1,
                    ("member-actions", 0, 21): 2})
    counts = chaos.classify(sent, members, dead)
    outcomes = lambda kind: {k: v for k, v in counts[kind].items() if v and k != "produced"}  # noqa: E731
    assert outcomes("action") == {"applied once": 1, "applied twice": 2, "lost": 1, "in DLQ": 1,
                                  "not delivered by the producer": 1}
    assert outcomes("hire") == {"applied twice": 1}
    assert outcomes("upsert") == {"applied once": 1, "lost": 1}
    assert outcomes("malformed") == {"in DLQ": 2, "dead-lettered twice": 1, "lost": 1, "applied twice": 1}


def test_the_fault_plan_mixes_every_kind_in_each_round():
    plan = chaos.fault_plan(50, seed=7)
    assert len(plan) == 50
    assert all(sorted(plan[i:i + 5]) == sorted(chaos.FAULTS) for i in range(0, 50, 5))
    assert plan == chaos.fault_plan(50, seed=7) != chaos.fault_plan(50, seed=8)


@pytest.mark.kafka
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
