"""Waiting on a condition with a deadline: the one way tests, benchmarks and `make run`
synchronize with brokers and workers (never a bare sleep)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05, ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Poll `predicate` until it returns something truthy; return that value.

    Raises TimeoutError naming `what` after `timeout` seconds. Exceptions of the
    types in `ignore` count as "not yet" (the last one is chained on timeout).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as err:
            last_error = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}") from last_error
        time.sleep(interval)  # a polling interval inside a deadline, not a synchronization


async def wait_for_async(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
                         interval: float = 0.005) -> T:
    """`wait_for` inside an event loop: polls without blocking the loop's other tasks."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        await asyncio.sleep(interval)  # a polling interval inside a deadline, not a synchronization
