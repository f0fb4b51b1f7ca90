"""Helpers for tests that run real stream workers: producing member events, and
waiting on what the workers' read API shows (never sleeps: conditions with timeouts)."""
from __future__ import annotations

from infra.worker_process import WorkerProcess
from streams.producer import EventProducer
from tests import factories as f


def member_with(worker: WorkerProcess, member_id: str, predicate, what: str, timeout: float = 60):
    def probe():
        value = worker.member(member_id)
        return value if value is not None and predicate(value) else None
    return worker.wait_for(probe, timeout, what)


def produce_views(bootstrap: str, members: list[str], steps: int | range) -> None:
    """A view per member for each step (`int`: steps 0..n-1), interleaved, event ids
    `<member>-<step>`."""
    with EventProducer(bootstrap) as p:
        for i in (range(steps) if isinstance(steps, int) else steps):
            for mid in members:
                p.send(f.action(f"{mid}-{i}", "view", i / 10, member_id=mid, job_id=f"j{i}"))


def views_handled(worker: WorkerProcess) -> int:
    return ((worker.stats() or {}).get("processed") or {}).get("member-actions", 0)


def assert_exact_view_counts(worker: WorkerProcess, members: list[str], per_member: int, where: str,
                             **other_counts: int) -> None:
    """Wait until every member has `per_member` views on `worker`, then require exactly
    that (and `other_counts` of other actions)."""
    counts: dict[str, dict | None] = {}

    def everyone_complete():
        for mid in members:
            state = worker.member(mid)
            counts[mid] = state and state["counts"]
        return all(c and c.get("view", 0) >= per_member for c in counts.values())
    try:
        worker.wait_for(everyone_complete, 180, f"every member's events {where}")
    except TimeoutError as err:  # say whether events were lost or the worker stalled
        raise AssertionError(f"counts {counts}\nstats {worker.stats()}\n{err}") from None
    assert counts == {mid: {"view": per_member, **other_counts} for mid in members}
