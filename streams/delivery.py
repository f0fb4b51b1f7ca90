"""What the worker does when the system, not a message, is at fault: stop before the
next offset commit.

Every source event must end in exactly one of three places: applied to state, in its
`<topic>.dlq` with the reason, or not committed (so it is read again on restart). A
bad message is the message's fault and is dead-lettered (`streams.processing`). A
produce that fails (a changelog or dead-letter record the broker refused), or a
state store that fails, is the system's fault: going on would commit offsets over
events whose effects were lost. So, as Kafka Streams' default production-exception
handler does, the worker stops: `fatal` ends the process at once, which is exactly
the SIGKILL the design already survives (RocksDB's WAL and the changelogs restore
state, the uncommitted events are reprocessed, duplicates are recognised).

`DeliveryWatch` is how a failed produce reaches `fatal` before a commit: every
record the producer accepts is watched (faust's own `_on_published` only logs a
failed send), and `streams.faust_fixes` checks the watch between faust's producer
flush and its offset commit.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import NoReturn

log = logging.getLogger(__name__)

# EX_SOFTWARE: a supervisor restarts the worker, which then reprocesses what was not
# committed. Tests look for this code to tell a deliberate stop from a crash.
EXIT_FATAL = 70


class StateStoreError(RuntimeError):
    """A table read or write failed: the system's fault, never the message's."""


def fatal(reason: str) -> NoReturn:
    """Stop the worker now, before any further offset commit can run.

    `os._exit` rather than an exception: an exception would unwind through faust's
    `take_events`, whose `finally` acks the batch, and faust's `on_task_error` then
    commits. Nothing after this line runs, so nothing is acked or committed."""
    log.critical("FATAL, stopping before the next offset commit (uncommitted events are "
                 "reprocessed on restart): %s", reason)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # a broken log handler must not keep the worker alive
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_FATAL)


class DeliveryWatch:
    """The delivery futures of every record handed to the producer, until each has
    succeeded. A failure anywhere is fatal, however it surfaces first: through the
    future's callback, or through `before_commit` if the callback has not run yet."""

    def __init__(self) -> None:
        self._pending: list[tuple[asyncio.Future, str]] = []
        self._commits_blocked: str | None = None

    # Delivered records are dropped at each commit; with commits far apart (or off),
    # this bounds the list by dropping them every so many sends instead.
    PRUNE_EVERY = 10_000

    def watch(self, fut: asyncio.Future, what: str) -> None:
        self._pending.append((fut, what))
        fut.add_done_callback(lambda f: self._check(f, what))
        if len(self._pending) % self.PRUNE_EVERY == 0:
            self._pending = [(f, w) for f, w in self._pending if not f.done()]

    @staticmethod
    def _check(fut: asyncio.Future, what: str) -> None:
        if fut.cancelled():
            fatal(f"a produce to {what} was cancelled before delivery")
        exc = fut.exception()
        if exc is not None:
            fatal(f"a produce to {what} failed: {exc!r}")

    def block_commits(self, reason: str) -> None:
        """No commit from this process any more (an agent was cancelled mid-batch:
        the worker is stopping, and its unfinished batch must be read again)."""
        if self._commits_blocked is None:
            log.warning("offset commits blocked for the rest of this process: %s", reason)
            self._commits_blocked = reason

    def before_commit(self) -> bool:
        """Called after faust's producer flush, before its offset commit: fatal if any
        watched record failed; False if commits are blocked; True to go on."""
        still_pending = []
        for fut, what in self._pending:
            if fut.done():
                self._check(fut, what)  # `fatal` on a failure; delivered records are dropped
            else:
                still_pending.append((fut, what))  # sent after the flush began: a later commit's
        self._pending = still_pending
        return self._commits_blocked is None


deliveries = DeliveryWatch()
