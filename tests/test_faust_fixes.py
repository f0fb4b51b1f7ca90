"""The two faust fixes in `streams.faust_fixes`, each pinned to the behaviour it fixes.

What they prevent end to end (events lost after a restart with changelogs to
restore) is shown by `tests/test_stream_worker.py::test_crash_and_restart_...`;
these tests fail at once if a fix is dropped or faust's methods change under it.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest import mock

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

import streams.app  # noqa: F401  (applies the fixes, as the worker does)


def test_the_consumer_thread_fetches_a_snapshot_of_the_active_partitions():
    live = {TP("member-actions", 0), TP("member-actions", 1)}
    seen = {}

    async def call_thread(fn, consumer, partitions, **kwargs):
        seen["partitions"] = partitions
        live.clear()  # faust pauses partitions while the fetch waits
        return {}

    thread = SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(_max_poll_records=None),
                             call_thread=call_thread, _fetch_records=None)
    asyncio.run(AIOKafkaConsumerThread.getmany(thread, live, 1.0))
    # An emptied live set would read as "every partition" to aiokafka.
    assert seen["partitions"] == {TP("member-actions", 0), TP("member-actions", 1)}
    assert isinstance(seen["partitions"], frozenset)


def test_recovery_seeks_source_partitions_before_it_resumes_them():
    calls = []
    source, changelog = TP("member-actions", 0), TP("hs-member-state-changelog", 0)
    consumer = mock.Mock()
    consumer.assignment.return_value = {source, changelog}

    async def perform_seek():
        calls.append("seek")

    consumer.perform_seek = perform_seek
    consumer.resume_partitions.side_effect = lambda tps: calls.append(("resume", frozenset(tps)))
    app = mock.Mock(consumer=consumer, consumer_generation_id=3)
    app.on_rebalance_complete.send = mock.AsyncMock()
    app._fetcher.maybe_start = mock.AsyncMock()
    recovery = mock.Mock(app=app, _is_changelog_tp=lambda tp: tp == changelog)
    recovery._wait = lambda coro, timeout: coro

    asyncio.run(Recovery._resume_streams(recovery, generation_id=3))
    assert calls == ["seek", ("resume", frozenset({source}))]
