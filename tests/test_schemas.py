import json

import pytest

from streams.schemas import (
    MAX_EXTRA_FIELDS, SCHEMA_VERSION, InvalidEvent, Job, MemberProfile, Seniority, key_of, parse, serialize, topic_of,
)
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
    assert json.loads(raw)["schema"] == SCHEMA_VERSION == "hirestream.v2"  # the wire name, not the field name


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
        (_envelope(schema="hirestream.v3"), "schema"),  # a later major version: readers go first
        (_envelope(type="job.posted"), "type"),  # a job event on the wrong topic
        (_envelope(payload={"member_id": "m1", "action": "apply"}), "needs a job_id"),
        (_envelope(payload={"member_id": "m1", "action": "dismiss", "job_id": "j1"}), "reason"),
        (_envelope(payload={"member_id": "m1", "action": "search"}), "query"),
        (_envelope(payload={"member_id": "m1", "action": "teleport", "job_id": "j1"}), "action"),
        (_envelope(**{f"extra_{i}": i for i in range(MAX_EXTRA_FIELDS + 1)}), "unknown fields"),
        (_envelope(payload={"member_id": "m1", "action": "click", "job_id": "j1", "dwell_s": 3}), "dwell"),
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


# ---- the compatibility policy (streams.schemas' docstring) ---------------------------

def test_an_unknown_field_is_accepted_and_kept_on_the_way_out():
    raw = json.loads(serialize(f.action("e1", "apply")))
    raw["trace_id"] = "t-1"  # a newer producer's envelope field
    raw["payload"]["experiment"] = {"arm": "b"}  # and a payload field
    event = parse("member-actions", json.dumps(raw))
    assert event.payload.job_id == "j1"
    again = json.loads(serialize(event))
    assert again["trace_id"] == "t-1" and again["payload"]["experiment"] == {"arm": "b"}


def test_a_v2_reader_reads_v1_events_and_keeps_their_version():
    raw = json.loads(serialize(f.member_upserted("e1")))
    raw["schema"] = "hirestream.v1"
    event = parse("members", json.dumps(raw))
    assert event.payload.title == "Data Engineer"
    assert json.loads(serialize(event))["schema"] == "hirestream.v1"


def test_fields_real_exports_lack_are_optional_with_an_explicit_unknown():
    p = MemberProfile(member_id="m1")
    assert (p.title, p.location, p.seniority, p.years_experience) == ("", "", Seniority.UNKNOWN, None)
    j = Job(job_id="j1", company_id="c1", company_name="Acme", title="Nurse")
    assert (j.location, j.seniority) == ("", Seniority.UNKNOWN)
    with pytest.raises(ValueError, match="no rank"):
        Seniority.UNKNOWN.rank


def test_a_view_carries_its_dwell_time():
    ev = f.action("e1", "view", job_id="j1")
    ev = ev.model_copy(update={"payload": ev.payload.model_copy(update={"dwell_s": 42.5})})
    assert parse("member-actions", serialize(ev)).payload.dwell_s == 42.5
