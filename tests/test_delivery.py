"""`streams.delivery`: a failed produce is fatal, however it is first seen."""
from __future__ import annotations

import asyncio

import pytest

from streams import delivery


@pytest.fixture
def fatal_calls(monkeypatch):
    calls = []

    def fake_fatal(reason):  # the real one ends the process
        calls.append(reason)
    monkeypatch.setattr(delivery, "fatal", fake_fatal)
    return calls


def test_a_failed_delivery_is_fatal_before_the_commit(fatal_calls):
    async def scenario():
        watch = delivery.DeliveryWatch()
        ok, failed = asyncio.get_running_loop().create_future(), asyncio.get_running_loop().create_future()
        watch.watch(ok, "member-actions.dlq")
        watch.watch(failed, "hs-member-state-changelog")
        ok.set_result("metadata")
        failed.set_exception(RuntimeError("RecordTooLarge"))
        # Before the done-callbacks run, the commit path sees the failure itself.
        assert watch.before_commit() is True  # (fatal is faked here; the real one never returns)
        return watch
    asyncio.run(scenario())
    assert any("hs-member-state-changelog" in call and "RecordTooLarge" in call for call in fatal_calls)


def test_blocked_commits_stay_blocked():
    watch = delivery.DeliveryWatch()
    assert watch.before_commit() is True
    watch.block_commits("agent cancelled mid-batch")
    assert watch.before_commit() is False
