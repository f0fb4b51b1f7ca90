import json
import warnings

from streams.schemas import Seniority
from streams.state import CatalogEntry, MemberState, apply_member_event, verbalized_history
from tests import factories as f

JOBS = {"j1": f.job("j1"), "j2": f.job("j2", title="Data Analyst", company_name="Globex", location="Austin")}


def fold(events, state=None, **kw):
    for ev in events:
        state = apply_member_event(state, ev, JOBS.get, **kw)
    return state


def test_history_groups_newest_first_and_counts():
    s = fold([f.member_upserted("p1"), f.action("a1", "view", 1), f.action("a2", "apply", 2),
              f.action("a3", "view", 3, job_id="j2"), f.hire("h1", 30)])
    assert [it.event_id for it in s.history] == ["h1", "a3", "a2", "a1"]
    assert s.counts == {"view": 2, "apply": 1, "hired": 1}
    assert s.profile.title == "Data Engineer"


def test_redelivered_event_changes_nothing():
    events = [f.member_upserted("p1"), f.action("a1", "apply", 1), f.action("a2", "save", 2)]
    once = fold(events)
    again = fold(events, once)  # the whole batch redelivered after a crash
    assert again == once
    assert apply_member_event(once, events[1], JOBS.get) is once


def test_history_is_bounded_keeping_the_newest():
    events = [f.action(f"a{i}", "view", i) for i in range(50)]
    s = fold(events, max_items=10)
    assert len(s.history) == 10
    assert s.history[0].event_id == "a49" and s.history[-1].event_id == "a40"
    assert s.counts["view"] == 50  # counters are all-time


def test_out_of_order_arrival_keeps_time_order():
    s = fold([f.action("late", "click", 5), f.action("early", "view", 1)])
    assert [it.event_id for it in s.history] == ["late", "early"]


def test_unknown_job_is_kept_not_dropped():
    s = fold([f.action("a1", "apply", 1, job_id="j-missing")])
    assert s.history[0].job.job_id == "j-missing"
    assert s.history[0].job.title == "(unknown job)"


def test_state_survives_its_table_encoding():
    s = fold([f.member_upserted("p1"), f.action("a1", "dismiss", 1, reason="too_senior"),
              f.action("a2", "search", 2, job_id=None, query="kafka jobs")])
    assert MemberState.from_dict(s.to_dict()) == s


def test_catalog_entry_survives_its_table_encoding_with_typed_fields():
    entry = CatalogEntry(f.job("j1", seniority=Seniority.DIRECTOR, pay_band="B7"), True, "e1", 5.0)
    back = CatalogEntry.from_dict(json.loads(json.dumps(entry.to_dict())))
    assert back == entry
    assert back.job.seniority.rank == Seniority.DIRECTOR.rank  # an enum again, not a bare string
    assert back.job.model_extra == {"pay_band": "B7"}  # unknown fields are kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns on a dump of a mistyped field
        assert back.to_dict() == entry.to_dict()


def test_verbalized_history_reads_like_360brew():
    s = fold([f.member_upserted("p1"), f.action("a1", "apply", 0), f.action("a2", "dismiss", 1, job_id="j2",
              reason="wrong_location")])
    text = verbalized_history(s, now=f.at(48).timestamp())
    assert "Applied: Senior Data Engineer, Acme, Seattle (2d ago)" in text
    assert "Dismissed: Data Analyst, Globex, Austin (1d ago, wrong location)" in text
    assert "## Member Profile\nData Engineer;" in text


def test_a_redelivery_is_recognised_by_its_offset_whatever_its_age():
    """More events than the event-id window: the oldest is still known as applied."""
    from streams.state import SourcePosition

    events = [f.action(f"a{i}", "view", i) for i in range(100)]
    state = None
    for offset, ev in enumerate(events):
        state = apply_member_event(state, ev, JOBS.get, seen_window=64,
                                   source=SourcePosition("member-actions", 1, offset))
    assert state.counts == {"view": 100}
    again = apply_member_event(state, events[0], JOBS.get, seen_window=64,
                               source=SourcePosition("member-actions", 1, 0))
    assert again is state
    assert MemberState.from_dict(state.to_dict()) == state  # the offsets are stored


def test_a_producer_duplicate_at_a_new_offset_is_recognised_by_its_id():
    from streams.state import SourcePosition

    ev = f.action("a1", "apply", 1)
    state = apply_member_event(None, ev, JOBS.get, source=SourcePosition("member-actions", 0, 5))
    assert apply_member_event(state, ev, JOBS.get, source=SourcePosition("member-actions", 0, 6)) is state
