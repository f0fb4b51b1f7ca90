"""Which worker answers a member read (streams.member_reads), as a pure decision over
what this worker sees of the group's assignment. tests/test_scale_out.py checks the
same over HTTP with real workers."""
from __future__ import annotations

from types import SimpleNamespace

from streams import decoding
from streams.member_reads import Placement, Step, plan

ME, OTHER = "http://127.0.0.1:6066", "http://127.0.0.1:6067"


def test_the_owner_answers_itself():
    assert plan(Placement(3, Step.ACTIVE, False, ME), ME, forwarded=False) == [Step.ACTIVE]


def test_an_owner_still_restoring_the_partition_does_not_answer_from_half_a_copy():
    assert plan(Placement(3, Step.ACTIVE, True, ME), ME, forwarded=False) == [Step.UNAVAILABLE]


def test_another_workers_member_is_forwarded_then_read_from_a_standby_copy():
    assert plan(Placement(3, Step.STANDBY, False, OTHER), ME, forwarded=False) == [Step.FORWARD, Step.STANDBY]
    assert plan(Placement(3, None, False, OTHER), ME, forwarded=False) == [Step.FORWARD]  # then 503


def test_a_forwarded_read_is_never_forwarded_again():
    assert plan(Placement(3, None, False, OTHER), ME, forwarded=True) == [Step.UNAVAILABLE]
    assert plan(Placement(3, Step.STANDBY, False, OTHER), ME, forwarded=True) == [Step.STANDBY]


def test_mid_rebalance_a_standby_copy_answers_or_nobody_does():
    assert plan(Placement(3, Step.STANDBY, False, None), ME, forwarded=False) == [Step.STANDBY]
    assert plan(Placement(3, None, False, None), ME, forwarded=False) == [Step.UNAVAILABLE]
    # A stale view in which this worker is named owner but no longer holds it: no loop to itself.
    assert plan(Placement(3, None, False, ME), ME, forwarded=False) == [Step.UNAVAILABLE]


def test_a_read_before_the_consumer_has_joined_its_group_is_placed_by_the_configured_count(monkeypatch):
    """The web server answers before faust's consumer has a group coordinator; reading
    its partition count then raised AttributeError and the member read answered 500."""
    def not_started(topic):
        raise AttributeError("'NoneType' object has no attribute '_metadata_snapshot'")
    monkeypatch.setattr(decoding, "app", SimpleNamespace(consumer=SimpleNamespace(topic_partitions=not_started)))
    assert decoding.partition_count("members") == decoding.settings.member_partitions
