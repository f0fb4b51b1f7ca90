"""Hidden ground truth: what each member wants, and who can do which job.

Nothing here is ever emitted as an event. Behaviour in the simulator is driven by
these functions, so a model that ranks jobs by `affinity` (learned from text and
actions) is the model that wins offline evaluation; `qualified` drives hires.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streams.schemas import DismissReason, Seniority, SENIORITY_ORDER
from streams.simulator.communities import Tastes
from streams.simulator.wishes import REMOTE

_SENIORITY = list(SENIORITY_ORDER)
QUALIFYING_SKILL_SHARE = 0.34  # a qualified member has at least a third of a job's skills


@dataclass(slots=True)
class Preferences:
    """A member's hidden wishes (indices into the marketplace's tables)."""

    occupations: tuple[int, ...]  # wanted occupations, the member's own first
    families: frozenset[str]  # SOC minor groups of those occupations
    locations: tuple[int, ...]  # acceptable cities, home first
    relocate: bool  # would move for the right job
    target_rank: int  # seniority rank they are looking for (>= their current rank)
    disliked_companies: frozenset[int] = field(default_factory=frozenset)
    # A wish stated only in the about text (wishes.py): "" none, "arrangement", "lead"
    # or "field". A field change shows in `occupations`/`families` (the new field's).
    wish: str = ""
    arrangements: frozenset[int] = frozenset()  # accepted work arrangements; empty: any
    wants_to_lead: bool = False  # wants a role that leads people
    leaving: str = ""  # SOC major group they want to leave ("" if none)
    # Graph signals, stated nowhere (careers.py, communities.py): the occupation a mover
    # wants to move into along a career path (-1: not a mover; it is also first in
    # `occupations`), and the tastes of the member's latent community (None: off).
    move_to: int = -1
    tastes: Tastes | None = None


@dataclass(slots=True)
class MemberState:
    """A member as the simulator tracks them (profile fields as indices)."""

    idx: int
    member_id: str
    occupation: int
    rank: int
    years: float
    location: int
    skills: list[int]  # skill ids, in profile order
    prefs: Preferences
    daily_rate: float  # chance of a session on a given day
    about_goal: str = ""  # sentence of the about text naming a wanted occupation or level (or "")
    about_mobility: str = ""
    about_wish: str = ""  # sentence of the about text stating `prefs.wish` (or "")
    wish_literal: bool = False  # whether it uses the words matching jobs are described with
    variant: int = 0  # picks phrasings of the about text
    hired_day: int = -1
    recent_jobs: list[int] = field(default_factory=list)  # last jobs shown (for already_seen)
    skill_set: frozenset[int] = frozenset()  # = set(skills), kept for the hot path
    applied: set[int] = field(default_factory=set)  # jobs applied to (never twice)
    # Occupations the member's own occupation has career paths to: employers there count
    # the path as qualification (transferable skills). Empty when career moves are off.
    move_targets: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.skill_set = frozenset(self.skills)

    def set_skills(self, skills: list[int]) -> None:
        self.skills = skills[:100]
        self.skill_set = frozenset(self.skills)


@dataclass(slots=True)
class JobState:
    idx: int
    job_id: str
    company: int
    occupation: int
    family: str
    location: int
    rank: int
    skills: tuple[int, ...]
    promoted: bool
    posted_day: int
    close_day: int  # day it expires unless filled first
    variant: int = 0  # picks phrasings of the description
    arrangement: int = 0  # wishes.ON_SITE/HYBRID/REMOTE, stated only in the description
    leads_people: bool = False  # lead level or above, or a managerial occupation
    company_major: str = ""  # the employer's SOC major group (its industry)
    open: bool = True
    applicants: list[int] = field(default_factory=list)  # member indices, in apply order
    applied_day: list[int] = field(default_factory=list)


# Each factor is in (0, 1]; affinity is their product. The weakest factor names the
# reason a member gives when dismissing, so dismiss feedback is truthful.
def field_factor(prefs: Preferences, job: JobState) -> float:
    if job.occupation in prefs.occupations:
        return 1.0
    return 0.5 if job.family in prefs.families else 0.08


def location_factor(prefs: Preferences, job: JobState) -> float:
    if job.location in prefs.locations:
        return 1.0
    if job.arrangement == REMOTE and REMOTE in prefs.arrangements:
        return 1.0  # someone who asked for remote work does not mind where the office is
    return 0.6 if prefs.relocate else 0.12


def seniority_factor(prefs: Preferences, job: JobState) -> float:
    gap = job.rank - prefs.target_rank
    return {0: 1.0, -1: 0.6, 1: 0.45, -2: 0.15, 2: 0.15}.get(gap, 0.04)


def company_factor(prefs: Preferences, job: JobState) -> float:
    return 0.25 if job.company in prefs.disliked_companies else 1.0


ARRANGEMENT_MISMATCH = 0.3
NOT_LEADING = 0.4


def wish_factor(prefs: Preferences, job: JobState) -> float:
    """The text-stated wish: a job outside the accepted arrangements, or one that leads
    nobody for a member who wants to lead, is worth less. (A change of field acts
    through `field_factor`, on the new field's occupations.)"""
    if prefs.arrangements and job.arrangement not in prefs.arrangements:
        return ARRANGEMENT_MISMATCH
    if prefs.wants_to_lead and not job.leads_people:
        return NOT_LEADING
    return 1.0


def wish_match(prefs: Preferences, job: JobState) -> bool | None:
    """Does the job give what the stated wish asks for (None: no wish)?"""
    if prefs.wish == "arrangement":
        return job.arrangement in prefs.arrangements
    if prefs.wish == "lead":
        return job.leads_people
    if prefs.wish == "field":
        return job.family in prefs.families
    return None


def skill_share(member: MemberState, job: JobState) -> float:
    if not job.skills:
        return 0.0
    return len(member.skill_set.intersection(job.skills)) / len(job.skills)


def taste_factor(prefs: Preferences, job: JobState) -> float:
    """The latent community's tastes (communities.py); 1 without a community."""
    t = prefs.tastes
    return 1.0 if t is None else t.factor(job.company, job.company_major, job.arrangement)


def affinity(member: MemberState, job: JobState) -> float:
    p = member.prefs
    a = (
        field_factor(p, job) * location_factor(p, job) * seniority_factor(p, job)
        * company_factor(p, job) * wish_factor(p, job) * (0.7 + 0.3 * skill_share(member, job))
    )
    return a if p.tastes is None else min(1.0, a * taste_factor(p, job))


def on_career_path(member: MemberState, job: JobState) -> bool:
    """Is this job in an occupation the member's own one has a career path to?"""
    return job.occupation in member.move_targets


def dismiss_reason(member: MemberState, job: JobState) -> DismissReason:
    """Why this member would dismiss this job: its weakest factor, or OTHER."""
    p = member.prefs
    factors = [
        (seniority_factor(p, job), DismissReason.TOO_SENIOR if job.rank > p.target_rank else DismissReason.TOO_JUNIOR),
        (location_factor(p, job), DismissReason.WRONG_LOCATION),
        (field_factor(p, job), DismissReason.NOT_MY_FIELD),
        (company_factor(p, job), DismissReason.COMPANY),
        (wish_factor(p, job), DismissReason.OTHER),  # no category says "not remote"
    ]
    if p.tastes is not None:
        factors.append((taste_factor(p, job), DismissReason.OTHER))  # nor "not my kind of place"
    weakest, reason = min(factors, key=lambda fr: fr[0])
    return reason if weakest < 0.7 else DismissReason.OTHER


def qualified(member: MemberState, job: JobState, min_years: float) -> bool:
    """Could this member do this job: enough of its skills (or a career path into its
    occupation: transferable skills), level and years."""
    return (
        (skill_share(member, job) >= QUALIFYING_SKILL_SHARE or job.occupation in member.move_targets)
        and job.rank - member.rank <= 1
        and member.years >= min_years
    )


class Truth:
    """Read-only view of the hidden ground truth, by public ids (for evaluation)."""

    def __init__(self, members: dict[str, MemberState], jobs: dict[str, JobState], min_years, describe,
                 occupation_label=str):
        self._members = members
        self._jobs = jobs
        self._min_years = min_years
        self._describe = describe  # Preferences -> readable dict (labels, city names)
        self._occupation_label = occupation_label  # occupation index -> label
        # Every apply and hire along a career path, as it happened:
        # (day, "apply" or "hire", member_id, job_id, from occupation, to occupation).
        self.career_moves: list[tuple[int, str, str, str, str, str]] = []

    def _pair(self, member_id: str, job_id: str) -> tuple[MemberState, JobState]:
        try:
            return self._members[member_id], self._jobs[job_id]
        except KeyError as err:
            raise KeyError(f"unknown member or job {err.args[0]!r} (truth covers entities generated so far)") from None

    def affinity(self, member_id: str, job_id: str) -> float:
        """How much the member wants this job, in (0, 1]."""
        return affinity(*self._pair(member_id, job_id))

    def qualified(self, member_id: str, job_id: str) -> bool:
        """Whether the member, as their profile stands now, could do this job."""
        member, job = self._pair(member_id, job_id)
        return qualified(member, job, self._min_years(_SENIORITY[job.rank]))

    def dismiss_reason(self, member_id: str, job_id: str) -> DismissReason:
        return dismiss_reason(*self._pair(member_id, job_id))

    def wish_match(self, member_id: str, job_id: str, prefs: Preferences | None = None) -> bool | None:
        """Does the job give what the member's text-stated wish asks for (None: no wish).
        `prefs`: judge by these wishes instead (e.g. another run's, same member ids)."""
        member, job = self._pair(member_id, job_id)
        return wish_match(member.prefs if prefs is None else prefs, job)

    def career_move(self, member_id: str, job_id: str) -> tuple[str, str] | None:
        """(from occupation, to occupation) when the job lies on a career path from the
        member's occupation (careers.py), else None."""
        member, job = self._pair(member_id, job_id)
        if not on_career_path(member, job):
            return None
        return self._occupation_label(member.occupation), self._occupation_label(job.occupation)

    def community(self, member_id: str) -> int:
        """The member's latent community (-1 when communities are off)."""
        member = self._members.get(member_id)
        if member is None:
            raise KeyError(f"unknown member {member_id!r}")
        return -1 if member.prefs.tastes is None else member.prefs.tastes.community

    def hidden_preferences(self, member_id: str) -> Preferences:
        """The member's raw hidden wishes (the simulator's own object: do not mutate)."""
        member = self._members.get(member_id)
        if member is None:
            raise KeyError(f"unknown member {member_id!r}")
        return member.prefs

    def preferences(self, member_id: str) -> dict:
        """The member's hidden wishes, readable: occupations, families, locations, ..."""
        member = self._members.get(member_id)
        if member is None:
            raise KeyError(f"unknown member {member_id!r}")
        return {**self._describe(member.prefs), "wish_text": member.about_wish,
                "wish_literal": member.wish_literal}
