"""`bench/e2e.py`'s own logic, without a broker or a clock: the open loop sends on its
schedule whatever the answers do, and the figures are counted from the right times."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.e2e import Outcome, arrivals, open_loop, summarize, sustainable


def test_arrivals_are_evenly_spaced_and_end_inside_the_duration():
    assert arrivals(4, 1.0) == [0.0, 0.25, 0.5, 0.75]
    assert arrivals(0.1, 12) == [0.0, 10.0]  # a slow rate still sends what falls inside
    assert len(arrivals(22, 12)) == 264
    with pytest.raises(ValueError):
        arrivals(0, 10)


class FakeClock:
    """Time moves only when the loop sleeps: the test times nothing."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.now += s


def test_the_open_loop_sends_on_schedule_while_no_answer_ever_comes():
    clock = FakeClock()
    fired: list[tuple[int, float, float]] = []
    never = asyncio.Event()  # the service never answers
    tasks = []

    def fire(i: int, at: float) -> None:
        fired.append((i, at, clock.now))
        tasks.append(asyncio.get_running_loop().create_task(never.wait()))

    async def main():
        t0, late = await open_loop(arrivals(10, 1.0), fire, clock=clock, sleep=clock.sleep)
        for t in tasks:
            t.cancel()
        return t0, late

    t0, late = asyncio.run(main())
    assert t0 == 100.0 and late == pytest.approx(0.0)
    assert [i for i, _, _ in fired] == list(range(10))  # all ten sent, none waited for
    np.testing.assert_allclose([at for _, at, _ in fired], 100.0 + np.arange(10) / 10)
    np.testing.assert_allclose([sent for _, _, sent in fired], [at for _, at, _ in fired])


def test_a_late_sender_is_measured_from_the_schedule_not_from_when_it_sent():
    """A sender that falls behind (a slow `fire`) sends at once without sleeping, and
    the lateness is reported; the schedule's times stay what latency counts from."""
    clock = FakeClock()
    scheduled = []

    def slow_fire(i: int, at: float) -> None:
        scheduled.append(at)
        clock.now += 0.3  # each send costs three arrivals' worth of time

    _, late = asyncio.run(open_loop(arrivals(10, 0.4), slow_fire, clock=clock, sleep=clock.sleep))
    np.testing.assert_allclose(scheduled, [100.0, 100.1, 100.2, 100.3])
    assert late == pytest.approx(0.6)  # the fourth went at 100.9, due at 100.3


def test_summary_counts_latency_from_the_scheduled_send_and_shares_of_all_sent():
    t0 = 10.0
    outcomes = [Outcome(10.0 + i * 0.1, 10.0 + i * 0.1 + 0.050, "ok",
                        {"retrieve": 10.0, "rank": 30.0, "queue": 5.0}) for i in range(96)]
    outcomes += [Outcome(20.0, 20.9, "partial", {"retrieve": 10.0, "queue": 890.0}),
                 Outcome(20.1, 20.101, "shed", {}),
                 Outcome(20.2, 21.2, "expired", {}),
                 Outcome(20.3)]  # never answered
    s = summarize(outcomes, t0)
    assert s["sent"] == 100 and s["answered"] == 99
    assert s["by_status"] == {"ok": 96, "partial": 1, "shed": 1, "expired": 1, "error": 0, "refused": 0, "lost": 1}
    assert s["shares"]["lost"] == pytest.approx(0.01) and s["shares"]["ok"] == pytest.approx(0.96)
    lat = [50.0] * 96 + [900.0, 1.0, 1000.0]
    assert s["p50_ms"] == pytest.approx(np.percentile(lat, 50))
    assert s["p99_ms"] == pytest.approx(np.percentile(lat, 99))
    assert s["max_ms"] == pytest.approx(1000.0)
    assert s["ok_p99_ms"] == pytest.approx(50.0)
    # the last third of the send window (scheduled from t0 + 2/3 of 10.3 s) holds the slow ones
    assert s["first_third_p99_ms"] == pytest.approx(50.0)
    assert s["last_third_p99_ms"] == pytest.approx(np.percentile([50.0] * 27 + [900.0, 1.0, 1000.0], 99))
    assert s["results_per_s"] == pytest.approx(99 / (21.2 - 10.0))
    # stage shares: of the latency of the 97 requests that reached retrieval only
    total = 96 * 50.0 + 900.0
    assert s["stage_shares"]["retrieve"] == pytest.approx(97 * 10.0 / total)
    assert s["stage_shares"]["rank"] == pytest.approx(96 * 30.0 / total)
    assert s["stage_shares"]["queue"] == pytest.approx((96 * 5.0 + 890.0) / total)


def test_the_summary_splits_latency_outside_the_worker_and_names_the_slowest_requests():
    t0 = 0.0
    # 20 requests that spent 40 ms of 50 inside the worker, one slow in transport (30 of 250 inside)
    outcomes = [Outcome(i * 0.1, i * 0.1 + 0.050, "ok", {"retrieve": 5.0, "rank": 30.0, "total": 40.0})
                for i in range(20)]
    outcomes.append(Outcome(3.0, 3.25, "ok", {"retrieve": 5.0, "rank": 20.0, "total": 30.0}))
    s = summarize(outcomes, t0)
    assert s["outside_p50_ms"] == pytest.approx(10.0)
    assert s["outside_p99_ms"] == pytest.approx(np.percentile([10.0] * 20 + [220.0], 99))
    slowest = s["slowest"]
    assert len(slowest) == 5 and slowest[0]["latency_ms"] == pytest.approx(250.0)
    assert slowest[0]["at_s"] == pytest.approx(3.0) and slowest[0]["total"] == pytest.approx(30.0)
    assert [o["latency_ms"] for o in slowest[1:]] == [50.0] * 4


def test_nothing_answered_gives_no_latency_rather_than_a_crash():
    s = summarize([Outcome(1.0), Outcome(2.0)], 1.0)
    assert s["answered"] == 0 and s["shares"]["lost"] == 1.0
    assert np.isnan(s["p99_ms"]) and np.isnan(s["results_per_s"])


def test_the_sustainable_rate_is_rounded_down_to_two_significant_digits():
    assert sustainable(45.8, 0.5) == 22
    assert sustainable(0.287, 0.5) == pytest.approx(0.14)
    with pytest.raises(ValueError):
        sustainable(0.0, 0.5)


def test_the_verdict_calls_latency_growing_only_when_the_last_third_is_slower_than_the_first():
    from bench.e2e import verdict_lines

    def run(rate, first, last, ok=1.0):
        shares = {"ok": ok, "partial": 1 - ok, "shed": 0.0, "refused": 0.0, "expired": 0.0, "lost": 0.0}
        return {"scorer": "bm25", "via": "http", "rate": rate, "p99_ms": max(first, last), "shares": shares,
                "first_third_p99_ms": first, "last_third_p99_ms": last, "rss_peak_mb": 300.0, "rss_growth_mb": 0.0}

    def verdict(over):
        report = {"sustainable": {"bm25": {"rate": 10.0}}, "runs": [run(10.0, 40.0, 45.0), over]}
        (line,) = verdict_lines(report, deadline_ms=1000)
        return line

    assert "all ok: met" in verdict(run(20.0, 900.0, 1000.0, ok=0.5))  # p99 45 ms at the sustainable rate
    assert "not growing" in verdict(run(20.0, 1900.0, 2000.0, ok=0.2))  # saturated from the start, steady
    assert "GROWING" in verdict(run(20.0, 900.0, 9000.0, ok=0.2))  # a queue that keeps filling
