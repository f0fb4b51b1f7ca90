import json

import pytest

from streams.schemas import InvalidEvent, key_of, parse, serialize, topic_of
from tests import factories as f

ALL_KINDS = [
    f.member_upserted("e1"), f.company("e2"), f.job_posted("e3"), f.job_closed("e4", "j1"),
    f.action("e5", "apply"), f.action("e6", "dismiss", reason="too_senior"),
    f.action("e7", "search", job_id=None, query="data engineer seattle"), f.hire("e8"),
]


@pytest.mark.parametrize("event", ALL_KINDS, ids=lambda e: e.type)
def test_round_trip_is_lossless(event):
    raw = serialize(event)
    assert parse(topic_of(event), raw) == event
    assert json.loads(raw)["schema"] == "hirestream.v1"  # the wire name, not the field name


def test_member_keyed_topics_are_keyed_by_member():
    assert key_of(f.action("e1", "click", member_id="m42")) == "m42"
    assert key_of(f.hire("e2", member_id="m7")) == "m7"
    assert key_of(f.job_posted("e3", job_id="j9")) == "j9"


def _envelope(**overrides) -> bytes:
    good = json.loads(serialize(f.action("e1", "apply")))
    good.update(overrides)
    return json.dumps(good).encode()


@pytest.mark.parametrize(
    "raw, reason_part",
    [
        (b"not json at all", "Invalid JSON"),
        (_envelope(event_id=""), "event_id"),
        (_envelope(event_time="2026-01-05T09:00:00"), "timezone"),  # naive time is ambiguous
        (_envelope(schema="hirestream.v0"), "schema"),
        (_envelope(type="job.posted"), "type"),  # a job event on the wrong topic
        (_envelope(payload={"member_id": "m1", "action": "apply"}), "needs a job_id"),
        (_envelope(payload={"member_id": "m1", "action": "dismiss", "job_id": "j1"}), "reason"),
        (_envelope(payload={"member_id": "m1", "action": "search"}), "query"),
        (_envelope(payload={"member_id": "m1", "action": "teleport", "job_id": "j1"}), "action"),
        (_envelope(extra_field=1), "extra_field"),
    ],
)
def test_rejections_say_what_was_wrong(raw, reason_part):
    with pytest.raises(InvalidEvent) as info:
        parse("member-actions", raw)
    assert reason_part.lower() in info.value.reason.lower()
    assert info.value.raw == raw  # the original bytes travel with the error


def test_unknown_topic_is_rejected():
    with pytest.raises(InvalidEvent, match="unknown topic"):
        parse("nope", serialize(f.hire("e1")))
