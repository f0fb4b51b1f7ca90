"""Examples replayed from a hand-made event log: labels right, nothing from the future."""
from __future__ import annotations

import pytest

from serving.training.training_examples import build_examples, split_by_time
from streams.schemas import (
    ActionType,
    DismissReason,
    Hire,
    HireConfirmed,
    Job,
    JobPosted,
    MemberAction,
    MemberActed,
    MemberProfile,
    MemberUpserted,
    Seniority,
    Surface,
    utc,
)

T0 = 1_800_000_000.0
MIN = 60.0
DAY = 86400.0


def job(jid: str, title: str) -> Job:
    return Job(job_id=jid, company_id="c1", company_name="Acme", title=title, location="Berlin",
               seniority=Seniority.MID, skills=["Python"])


def posted(t, jid, title):
    return JobPosted(event_id=f"post-{jid}", event_time=utc(t), payload=job(jid, title))


def member(t, mid="m1"):
    return MemberUpserted(event_id=f"up-{mid}-{t}", event_time=utc(t), payload=MemberProfile(
        member_id=mid, title="Data Engineer", location="Berlin", seniority=Seniority.MID, years_experience=3,
        skills=["Python"]))


def act(t, eid, action, jid=None, surface=Surface.RECOMMENDATIONS, mid="m1", **kw):
    if action is ActionType.DISMISS:
        kw.setdefault("reason", DismissReason.NOT_MY_FIELD)
    return MemberActed(event_id=eid, event_time=utc(t), payload=MemberAction(
        member_id=mid, action=action, job_id=jid, surface=surface, **kw))


def hire(t, eid, jid, mid="m1"):
    return HireConfirmed(event_id=eid, event_time=utc(t), payload=Hire(member_id=mid, job_id=jid, company_id="c1"))


V, A, C, S, D, Q = ActionType.VIEW, ActionType.APPLY, ActionType.CLICK, ActionType.SAVE, ActionType.DISMISS, ActionType.SEARCH


def log():
    return [
        posted(T0, "j1", "ETL Developer"),
        posted(T0, "j2", "Chef"),
        posted(T0, "j3", "Data Engineer"),
        posted(T0, "j4", "Spark Engineer"),
        member(T0 + 1),
        # slate 1 (recommendations): j1 and j2 shown, j1 clicked and applied, j2 dismissed
        act(T0 + 10 * MIN, "v1", V, "j1"),
        act(T0 + 11 * MIN, "v2", V, "j2"),
        act(T0 + 12 * MIN, "c1", C, "j1"),
        act(T0 + 13 * MIN, "a1", A, "j1"),
        act(T0 + 14 * MIN, "d2", D, "j2"),
        # the employer hires for j1 two days later
        hire(T0 + 2 * DAY, "h1", "j1"),
        # slate 2 (search), next day: a query, then j3 (saved) and j4 (ignored)
        act(T0 + DAY, "q1", Q, query="spark data engineering", surface=Surface.SEARCH),
        act(T0 + DAY + MIN, "v3", V, "j3", surface=Surface.SEARCH),
        act(T0 + DAY + 2 * MIN, "v4", V, "j4", surface=Surface.SEARCH),
        act(T0 + DAY + 3 * MIN, "s3", S, "j3", surface=Surface.SEARCH),
    ]


def by_key(examples):
    return {(e.task, e.job.job_id, e.slate_id.split("/")[1]): e for e in examples}


def ordered(events):
    return sorted(events, key=lambda e: e.event_time)


def test_labels_per_task():
    ex = by_key(build_examples(ordered(log())))
    assert ex[("click", "j1", "recommendations")].label == 1
    assert ex[("apply", "j1", "recommendations")].label == 1
    assert ex[("save", "j1", "recommendations")].label == 0
    assert ex[("dismiss", "j1", "recommendations")].label == 0
    assert ex[("dismiss", "j2", "recommendations")].label == 1
    assert ex[("apply", "j2", "recommendations")].label == 0
    assert ex[("save", "j3", "search")].label == 1
    assert ex[("search_relevance", "j3", "search")].label == 1
    assert ex[("search_relevance", "j4", "search")].label == 0
    assert ex[("search_relevance", "j4", "search")].query == "spark data engineering"
    assert ex[("hire", "j1", "apply")].label == 1
    assert ("search_relevance", "j1", "recommendations") not in ex  # only search slates


def test_no_example_sees_its_own_or_a_later_event():
    events = ordered(log())
    time_of = {e.event_id: e.event_time.timestamp() for e in events}
    examples = build_examples(events)
    assert examples
    for e in examples:
        for it in e.history:
            assert it.event_time < e.request_time, (e.task, e.slate_id, it.event_id)
            assert time_of[it.event_id] < e.request_time
    ex = by_key(examples)
    # slate 1's prompt was fixed before its first view: no views, clicks or applies of it
    assert ex[("apply", "j1", "recommendations")].history == ()
    # the hire example is as of the application: the apply itself is not in its history
    assert {it.event_id for it in ex[("hire", "j1", "apply")].history} == {"v1", "v2", "c1"}
    # slate 2 (a day later) knows slate 1's outcome but not its own search results
    seen = {it.event_id for it in ex[("save", "j3", "search")].history}
    assert {"a1", "d2", "q1"} <= seen and not seen & {"v3", "v4", "s3", "h1"}


def test_counters_are_as_of_the_request():
    ex = by_key(build_examples(ordered(log())))
    assert ex[("apply", "j1", "recommendations")].job_counts == {}
    assert ex[("apply", "j1", "recommendations")].is_cold_start
    assert ex[("save", "j3", "search")].member_counts["apply"] == 1


def test_out_of_order_events_are_refused():
    events = ordered(log())
    events[5], events[6] = events[6], events[5]
    with pytest.raises(ValueError, match="event-time order"):
        build_examples(events)


def test_outcomes_after_the_window_do_not_count():
    events = ordered(log() + [act(T0 + 9 * DAY, "late", S, "j2")])
    ex = by_key(build_examples(events))
    assert ex[("save", "j2", "recommendations")].label == 0


def test_split_by_time_keeps_slates_whole():
    examples = build_examples(ordered(log()))
    train, held = split_by_time(examples, T0 + DAY / 2)
    assert {e.slate_id for e in train}.isdisjoint({e.slate_id for e in held})
    assert all(e.request_time < T0 + DAY / 2 for e in train) and held
