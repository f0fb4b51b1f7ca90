"""Small hand-made events for tests: readable, deterministic, no simulator needed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streams.schemas import (
    ActionType, Company, CompanyUpserted, DismissReason, Hire, HireConfirmed, Job,
    JobClosed, JobClosedEvent, JobPosted, MemberAction, MemberActed, MemberProfile,
    MemberUpserted, Seniority, Surface,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def profile(member_id: str = "m1", **kw) -> MemberProfile:
    base = dict(
        member_id=member_id, title="Data Engineer", occupation="data engineer",
        skills=["Python", "SQL", "Apache Kafka"], location="Seattle",
        seniority=Seniority.MID, years_experience=5, about="I build pipelines.",
    )
    return MemberProfile(**{**base, **kw})


def job(job_id: str = "j1", **kw) -> Job:
    base = dict(
        job_id=job_id, company_id="c1", company_name="Acme", title="Senior Data Engineer",
        occupation="data engineer", skills=["Python", "Spark"], location="Seattle",
        seniority=Seniority.SENIOR, promoted=False, description="Build streaming systems.",
    )
    return Job(**{**base, **kw})


def member_upserted(event_id: str, hours: float = 0, **kw) -> MemberUpserted:
    return MemberUpserted(event_id=event_id, event_time=at(hours), payload=profile(**kw))


def job_posted(event_id: str, hours: float = 0, **kw) -> JobPosted:
    return JobPosted(event_id=event_id, event_time=at(hours), payload=job(**kw))


def job_closed(event_id: str, job_id: str, hours: float = 0) -> JobClosedEvent:
    return JobClosedEvent(event_id=event_id, event_time=at(hours), payload=JobClosed(job_id=job_id))


def action(event_id: str, action: str, hours: float = 0, member_id: str = "m1",
           job_id: str | None = "j1", reason: str | None = None, query: str | None = None,
           surface: str | None = None, dwell_s: float | None = None) -> MemberActed:
    return MemberActed(
        event_id=event_id, event_time=at(hours),
        payload=MemberAction(
            member_id=member_id, action=ActionType(action), job_id=job_id,
            reason=DismissReason(reason) if reason else None, query=query,
            **({"surface": Surface(surface)} if surface else {}),
            **({"dwell_s": dwell_s} if dwell_s is not None else {}),
        ),
    )


def hire(event_id: str, hours: float = 0, member_id: str = "m1", job_id: str = "j1") -> HireConfirmed:
    return HireConfirmed(event_id=event_id, event_time=at(hours),
                         payload=Hire(member_id=member_id, job_id=job_id, company_id="c1"))


def company(event_id: str, company_id: str = "c1") -> CompanyUpserted:
    return CompanyUpserted(event_id=event_id, event_time=T0,
                           payload=Company(company_id=company_id, name="Acme", industry="Software"))
