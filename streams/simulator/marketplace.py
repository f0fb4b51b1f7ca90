"""A seeded job marketplace that emits the events the real one would.

    sim = Marketplace(MarketplaceConfig(seed=7, n_members=1000, n_jobs=2000, days=14))
    for event in sim.events():   # lazy: one simulated day in memory at a time
        ...
    sim.truth.affinity(member_id, job_id)   # hidden ground truth, for evaluation

Order of events: every company, job and member upsert at the start time, then day
by day in event-time order. Within a day: jobs past their lifetime close overnight;
employers review the previous days' applicants (hiring qualified ones far more
often) and close filled jobs; members hold sessions (search, recommendations, a
promoted slot; each shown job is a `view`, then click/save/apply with chances that
rise with hidden affinity, or a dismiss whose reason is the weakest part of the fit);
new jobs replace closed ones and become visible the next day; a few members join.
A share of members hold a wish stated only in their about text (wishes.py), which
their hidden affinity follows.

Determinism: all randomness comes from `random.Random` streams seeded by strings
derived from the seed (string seeds hash with SHA-512, not Python's salted hash),
and nothing iterates a set, so the same seed gives the same bytes in any process.
"""
from __future__ import annotations

import copy
import functools
import random
from datetime import timedelta
from math import exp
from typing import Iterator

from streams.schemas import (
    ActionType, Company, CompanyUpserted, DismissReason, Envelope, HireConfirmed, Hire, Job,
    JobClosed, JobClosedEvent, JobPosted, MemberActed, MemberProfile,
    MemberUpserted, SENIORITY_ORDER, Seniority, Surface,
)
from streams.simulator import careers, communities, text, wishes
from streams.simulator.config import MarketplaceConfig
from streams.simulator.taxonomy import Occupation, load_taxonomy
from streams.simulator.truth import (
    JobState, MemberState, Preferences, Truth, affinity, dismiss_reason, qualified,
)

SENIORITIES = list(SENIORITY_ORDER)
CITIES = (
    "London", "Berlin", "Paris", "Amsterdam", "Madrid", "Milan", "Dublin", "Warsaw",
    "Stockholm", "Munich", "Zurich", "Vienna", "Lisbon", "Copenhagen", "Brussels",
    "New York", "San Francisco", "Chicago", "Austin", "Seattle", "Boston", "Toronto",
    "Sydney", "Singapore", "Bangalore", "Tokyo",
)
# Bigger cities hold more members and jobs.
CITY_WEIGHTS = (10, 7, 7, 4, 5, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 9, 5, 4, 3, 3, 3, 4, 3, 4, 5, 5)

# Years of experience a member at each level can have (inclusive bounds).
SENIORITY_YEARS: dict[Seniority, tuple[float, float]] = {
    Seniority.INTERN: (0, 1), Seniority.ENTRY: (0, 3), Seniority.MID: (2, 7),
    Seniority.SENIOR: (5, 14), Seniority.LEAD: (8, 20), Seniority.DIRECTOR: (10, 28),
    Seniority.EXECUTIVE: (15, 40),
}
_MEMBER_LEVEL_WEIGHTS = (4, 20, 32, 24, 11, 6, 3)
_JOB_LEVEL_WEIGHTS = (4, 18, 34, 26, 10, 6, 2)
_MANAGERIAL = ("manager", "director", "head", "chief", "supervisor")
_LEAD_RANK = Seniority.LEAD.rank

# Behaviour curves: chances as functions of hidden affinity a in (0, 1].
def p_click(a: float) -> float: return 0.03 + 0.6 * a
def p_save(a: float) -> float: return 0.02 + 0.25 * a  # given a click
def p_apply(a: float) -> float: return 0.05 + 0.55 * a  # given a click
def p_dismiss(a: float) -> float: return 0.3 * (1 - a)  # given no click
P_HIRE_QUALIFIED = 0.6  # chance an employer hires a qualified applicant it reviews
P_HIRE_UNQUALIFIED = 0.03

_COMPANY_WORDS = (
    "Northwind", "Bluefield", "Granite", "Silverline", "Redwood", "Harbor", "Summit", "Brightwater",
    "Ironbridge", "Evergreen", "Lakeside", "Crescent", "Falcon", "Oakridge", "Meridian", "Westgate",
    "Pinecrest", "Stonehill", "Riverside", "Aurora", "Beacon", "Cobalt", "Highland", "Kestrel",
    "Larkspur", "Maple", "Nova", "Orion", "Prairie", "Quarry", "Sterling", "Tidewater", "Upland",
    "Vantage", "Willow", "Zephyr", "Atlas", "Birch", "Cedar", "Delta", "Ember", "Fjord",
)
_INDUSTRY_SUFFIXES = {
    "11": ("Group", "Holdings", "Partners"), "13": ("Capital", "Advisory", "Finance"),
    "15": ("Systems", "Software", "Labs"), "17": ("Engineering", "Technologies", "Dynamics"),
    "19": ("Research", "Sciences", "Institute"), "21": ("Foundation", "Community Services", "Trust"),
    "23": ("Legal", "Law Partners", "Chambers"), "25": ("Academy", "Learning", "College"),
    "27": ("Studios", "Media", "Creative"), "29": ("Health", "Clinic", "Medical"),
    "31": ("Care", "Health Services", "Homecare"), "33": ("Security", "Protection", "Safety"),
    "35": ("Kitchens", "Hospitality", "Foods"), "37": ("Facilities", "Property Services", "Grounds"),
    "39": ("Wellness", "Leisure", "Services"), "41": ("Retail", "Trading", "Sales"),
    "43": ("Business Services", "Office Solutions", "Administration"),
    "45": ("Farms", "Agriculture", "Forestry"), "47": ("Construction", "Builders", "Mining"),
    "49": ("Maintenance", "Repair", "Technical Services"), "51": ("Manufacturing", "Industries", "Works"),
    "53": ("Logistics", "Transport", "Freight"),
}
_DAY = 86_400
_NEVER = 1 << 62


class _Pool:
    """Open job indices with O(1) add, remove and uniform choice."""

    __slots__ = ("items", "pos")

    def __init__(self) -> None:
        self.items: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, x: int) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def remove(self, x: int) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def choice(self, rng: random.Random) -> int | None:
        return self.items[int(rng.random() * len(self.items))] if self.items else None

    def __len__(self) -> int:
        return len(self.items)


_EMPTY_POOL = _Pool()


_validate_acted = MemberActed.model_validate

# Record kinds in a day's buffer; a record is (time_s, seq, kind, *args).
_K_COMPANY, _K_JOB, _K_MEMBER, _K_ACTION, _K_HIRE, _K_CLOSE = range(6)


class Marketplace:
    def __init__(self, config: MarketplaceConfig):
        self.config = config
        self.truth = Truth({}, {}, lambda s: text.min_years(s), self._describe_preferences,
                           occupation_label=lambda i: self.occupations[i].label)
        self._build()

    # ---- entities ------------------------------------------------------------------

    def _build(self) -> None:
        """(Re)create every entity from the seed; `events()` mutates what this makes."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}/entities")
        self._pick_occupations(rng, load_taxonomy().occupations)
        self._company_major: list[str] = []  # SOC major group of each company
        self._companies = [self._make_company(rng, i) for i in range(cfg.n_companies)]
        self._company_weights = list(_cumulative(
            [1.0 + (c.size ** 0.5) / 10 for c in self._companies]))
        # Latent communities (communities.py): their own stream, none when strength is 0.
        self._communities = communities.make_communities(
            cfg.seed, cfg.n_communities, self._company_major, cfg.community_strength,
        ) if cfg.community_strength > 0 else []
        self._pools_company = [_Pool() for _ in self._companies] if self._communities else []
        self._jobs: list[JobState] = []
        self._members: list[MemberState] = []
        self._by_close_day: dict[int, list[int]] = {}  # day -> jobs that expire then
        self._pending: dict[int, None] = {}  # jobs with unreviewed applicants (ordered set)
        for _ in range(cfg.n_jobs):
            self._new_job(rng, posted_day=0, close_day=rng.randint(1, cfg.job_lifetime_days[1]))
        for _ in range(cfg.n_members):
            self._new_member(rng, rate=self._draw_rate(rng))
        self._initial_members = [copy.copy(m) for m in self._members]  # profiles as first emitted
        self._n_initial_jobs = len(self._jobs)
        self.truth._members = {m.member_id: m for m in self._members}
        self.truth._jobs = {j.job_id: j for j in self._jobs}
        self.truth.career_moves = []
        self._started = False
        for name in ("members", "jobs", "companies"):
            self.__dict__.pop(name, None)

    def _pick_occupations(self, rng: random.Random, catalogue: tuple[Occupation, ...]) -> None:
        """Occupations in play: whole families (up to 10 occupations each), shuffled."""
        by_family: dict[str, list[int]] = {}
        for i, occ in enumerate(catalogue):
            by_family.setdefault(occ.family, []).append(i)
        majors = self.config.occupation_majors
        families = sorted(f for f, occs in by_family.items()
                          if len(occs) >= 2 and (not majors or catalogue[occs[0]].major in majors))
        rng.shuffle(families)
        want = min(self.config.occupations_in_play, len(catalogue))
        chosen: list[int] = []
        for fam in families:
            members = by_family[fam]
            chosen.extend(rng.sample(members, min(10, len(members), want - len(chosen))))
            if len(chosen) >= want:
                break
        self.occupations: list[Occupation] = [catalogue[i] for i in chosen]
        # Zipf-like popularity: a few occupations have most jobs and members.
        order = list(range(len(chosen)))
        rng.shuffle(order)
        weights = [0.0] * len(chosen)
        for r, i in enumerate(order):
            weights[i] = 1.0 / (r + 1) ** 0.7
        self._occ_weights = list(_cumulative(weights))
        self._skills: list[str] = []
        skill_id: dict[str, int] = {}
        self._occ_skills: list[tuple[int, ...]] = []
        for occ in self.occupations:
            ids = []
            for label in occ.skills:
                if label not in skill_id:
                    skill_id[label] = len(self._skills)
                    self._skills.append(label)
                ids.append(skill_id[label])
            self._occ_skills.append(tuple(ids))
        self._family_occs: dict[str, list[int]] = {}
        self._major_occs: dict[str, list[int]] = {}
        for i, occ in enumerate(self.occupations):
            self._family_occs.setdefault(occ.family, []).append(i)
            self._major_occs.setdefault(occ.major, []).append(i)
        self._skill_occs: dict[int, list[int]] = {}
        for i, ids in enumerate(self._occ_skills):
            for s in ids[:20]:
                self._skill_occs.setdefault(s, []).append(i)
        self._managerial = [any(w in occ.label for w in _MANAGERIAL) for occ in self.occupations]
        # Career paths between adjacent occupations (careers.py): none when moves are off.
        self.career_paths: dict[int, tuple[careers.CareerPath, ...]] = careers.career_paths(
            self._occ_skills, [o.family for o in self.occupations], self._managerial,
        ) if self.config.career_move_share > 0 else {}
        self._pools_all = _Pool()
        self._pools_occ = [_Pool() for _ in self.occupations]
        self._pools_family = {f: _Pool() for f in self._family_occs}
        self._pools_city = [_Pool() for _ in CITIES]
        self._pools_promoted = _Pool()
        # (occupation index or family code, city index) -> open jobs there
        self._pools_local: dict[tuple[int | str, int], _Pool] = {}

    def _make_company(self, rng: random.Random, idx: int) -> Company:
        occ = self.occupations[_pick(rng, self._occ_weights)]
        major = occ.major if occ.major in _INDUSTRY_SUFFIXES else "11"
        name = f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_INDUSTRY_SUFFIXES[major])}"
        self._company_major.append(occ.major)
        size = int(min(200_000, 10 * exp(rng.gauss(3.0, 1.6))))
        return Company(
            company_id=f"c{idx:06d}", name=name, industry=occ.industry,
            location=_city(rng), size=max(2, size),
        )

    def _level(self, rng: random.Random, weights: tuple[int, ...], occ: int) -> int:
        rank = rng.choices(range(len(SENIORITIES)), weights=weights)[0]
        return max(rank, 2) if self._managerial[occ] else rank

    def _new_job(self, rng: random.Random, posted_day: int, close_day: int) -> JobState:
        company = _pick(rng, self._company_weights)
        major_occs = self._major_occs.get(self._company_major[company])
        if major_occs and rng.random() < 0.75:
            occ = rng.choice(major_occs)
        else:
            occ = _pick(rng, self._occ_weights)
        top = self._occ_skills[occ][:16]
        home = CITIES.index(self._companies[company].location)
        job = JobState(
            idx=len(self._jobs), job_id=f"j{len(self._jobs):07d}", company=company, occupation=occ,
            family=self.occupations[occ].family,
            location=home if rng.random() < 0.7 else _city_idx(rng),
            rank=self._level(rng, _JOB_LEVEL_WEIGHTS, occ),
            skills=tuple(rng.sample(top, min(len(top), rng.randint(5, 8)))),  # top: the first 16
            promoted=rng.random() < self.config.promoted_share,
            posted_day=posted_day, close_day=close_day, variant=int(rng.random() * 1_000_000),
        )
        job.arrangement = wishes.job_arrangement(job.variant, self.occupations[occ].major)
        job.leads_people = job.rank >= _LEAD_RANK or self._managerial[occ]
        job.company_major = self._company_major[company]
        self._jobs.append(job)
        self._by_close_day.setdefault(close_day, []).append(job.idx)
        return job

    def _draw_rate(self, rng: random.Random) -> float:
        cfg = self.config
        if rng.random() < cfg.cold_start_share:
            return cfg.cold_start_rate
        return min(0.95, cfg.active_rate * exp(rng.gauss(0.0, 0.6) - 0.18))

    def _new_member(self, rng: random.Random, rate: float) -> MemberState:
        occ = _pick(rng, self._occ_weights)
        rank = self._level(rng, _MEMBER_LEVEL_WEIGHTS, occ)
        lo, hi = SENIORITY_YEARS[SENIORITIES[rank]]
        years = round(rng.uniform(lo, hi), 1)
        family = self.occupations[occ].family
        skills = rng.sample(self._occ_skills[occ][:16], rng.randint(6, 10))
        siblings = [o for o in self._family_occs[family] if o != occ]
        if siblings:
            skills += rng.sample(self._occ_skills[rng.choice(siblings)][:15], rng.randint(0, 2))
        if rng.random() < 0.3:
            skills.append(int(rng.random() * len(self._skills)))
        skills = list(dict.fromkeys(skills))

        wanted = [occ] + rng.sample(siblings, min(len(siblings), rng.randint(0, 2)))
        changer = rng.random() < 0.12  # wants to move into a neighbouring field
        if changer:
            adjacent = self._major_occs[self.occupations[occ].major]
            wanted.append(rng.choice(adjacent) if len(adjacent) > 1 else _pick(rng, self._occ_weights))
        home = _city_idx(rng)
        locations = (home,) + ((_city_idx(rng),) if rng.random() < 0.25 else ())
        relocate = rng.random() < 0.25
        target = min(rank + (1 if rng.random() < 0.35 else 0), len(SENIORITIES) - 1)
        disliked = frozenset([int(rng.random() * len(self._companies))]) if rng.random() < 0.3 else frozenset()
        prefs = Preferences(
            occupations=tuple(dict.fromkeys(wanted)),
            families=frozenset(self.occupations[o].family for o in wanted),
            locations=tuple(dict.fromkeys(locations)), relocate=relocate, target_rank=target,
            disliked_companies=disliked,
        )
        goal = ""
        if rng.random() < 0.55:
            if changer and wanted[-1] != occ:
                goal = f"Looking to move into {self.occupations[wanted[-1]].label} roles."
            elif target > rank:
                goal = f"Ready for a {SENIORITIES[target].value}-level role."
            else:
                goal = f"Looking for {self.occupations[occ].label} roles."
        mobility = ""
        if rng.random() < 0.6:
            if relocate:
                mobility = "Open to relocation."
            elif len(locations) > 1:
                mobility = f"Also happy to work in {CITIES[locations[1]]}."
            else:
                mobility = "Not looking to relocate."
        member = MemberState(
            idx=len(self._members), member_id=f"m{len(self._members):07d}", occupation=occ,
            rank=rank, years=years, location=home, skills=skills, prefs=prefs, daily_rate=rate,
            about_goal=goal, about_mobility=mobility, variant=int(rng.random() * 1_000_000),
        )
        if self.career_paths:
            self._give_move(member)
        if self.config.text_preference_share > 0:
            self._give_wish(member)
        if self._communities:
            member.prefs.tastes = self._communities[
                communities.community_of(self.config.seed, member.idx, len(self._communities))]
        self._members.append(member)
        return member

    def _give_move(self, m: MemberState) -> None:
        """Career paths from the member's occupation count as qualification there; a
        share of members (drawn from their own stream) want to move along one."""
        paths = self.career_paths.get(m.occupation)
        if not paths:
            return
        m.move_targets = frozenset(p.target for p in paths)
        rng = careers.move_rng(self.config.seed, m.idx)
        if rng.random() >= careers.mover_chance(self.config.career_move_share):
            return
        path = careers.choose_path(rng, paths)
        p = m.prefs
        p.move_to = path.target
        # they want to leave their own occupation: it counts as their field, no longer as wanted
        p.occupations = (path.target,) + tuple(o for o in p.occupations if o not in (path.target, m.occupation))
        p.families = p.families | {self.occupations[path.target].family}

    def _give_wish(self, m: MemberState) -> None:
        """Maybe give the member a wish only their about text states (wishes.py). Its
        draws come from the member's own stream, so no other stream moves."""
        rng = wishes.wish_rng(self.config.seed, m.idx)
        if rng.random() >= self.config.text_preference_share:
            return
        p = m.prefs
        kinds, weights = ["arrangement"], [0.4]
        if m.rank in (Seniority.SENIOR.rank, _LEAD_RANK) and not self._managerial[m.occupation]:
            kinds.append("lead")
            weights.append(0.3)
        old_major = self.occupations[m.occupation].major
        new_majors = self._majors_to_move_to(old_major)
        if new_majors:
            kinds.append("field")
            weights.append(0.3)
        p.wish = rng.choices(kinds, weights=weights)[0]
        if p.wish == "arrangement":
            p.arrangements, m.about_wish, words = wishes.arrangement_wish(rng)
        elif p.wish == "lead":
            p.wants_to_lead = True
            p.target_rank = min(m.rank + 1, len(SENIORITIES) - 1)
            m.about_wish, words = wishes.lead_wish(rng)
        else:
            new_major = rng.choice(new_majors)
            first = rng.choice(self._major_occs[new_major])
            family = self.occupations[first].family
            siblings = [o for o in self._family_occs[family] if o != first]
            wanted = [first] + ([rng.choice(siblings)] if siblings and rng.random() < 0.5 else [])
            p.occupations = tuple(wanted)
            p.families = frozenset(self.occupations[o].family for o in wanted)
            p.move_to = -1  # a change of field replaces a career move
            p.leaving = old_major
            m.about_goal = ""  # "Looking for <their current occupation> roles" would contradict it
            m.about_wish, words = wishes.field_wish(
                rng, old_major, new_major, [self.occupations[o].label for o in wanted])
        m.wish_literal = wishes.literal(m.about_wish, words)

    def _majors_to_move_to(self, old_major: str) -> list[str]:
        """Fields in play a member of `old_major` could say they want to move into."""
        if old_major not in wishes.FIELD_WORDS:
            return []
        old_name = wishes.FIELD_WORDS[old_major][0]
        return [major for major in sorted(self._major_occs)
                if major in wishes.FIELD_WORDS and wishes.FIELD_WORDS[major][0] != old_name]

    # ---- rendering (state -> payloads) -------------------------------------------

    def _job_payload(self, job: JobState) -> Job:
        occ = self.occupations[job.occupation]
        company = self._companies[job.company]
        seniority = SENIORITIES[job.rank]
        title = text.make_title(occ.label, seniority)
        skills = [self._skills[s] for s in job.skills]
        return Job(
            job_id=job.job_id, company_id=company.company_id, company_name=company.name,
            title=title, occupation=occ.label, skills=skills, location=CITIES[job.location],
            seniority=seniority, promoted=job.promoted,
            description=text.job_description(
                job.variant, company.name, title, CITIES[job.location], occ.definition, seniority, skills,
                wishes.arrangement_sentence(job.variant, job.arrangement)
                if self.config.text_preference_share > 0 else ""),
        )

    def _member_payload(self, m: MemberState) -> MemberProfile:
        occ = self.occupations[m.occupation]
        seniority = SENIORITIES[m.rank]
        skills = [self._skills[s] for s in m.skills]
        return MemberProfile(
            member_id=m.member_id, title=text.make_title(occ.label, seniority), occupation=occ.label,
            skills=skills, location=CITIES[m.location], seniority=seniority, years_experience=m.years,
            about=text.member_about(m.variant + len(m.skills), occ.label, seniority, m.years, CITIES[m.location], skills,
                                    m.about_goal, m.about_mobility, m.about_wish),
        )

    def _describe_preferences(self, p: Preferences) -> dict:
        return {
            "occupations": [self.occupations[o].label for o in p.occupations],
            "families": sorted(p.families),
            "locations": [CITIES[c] for c in p.locations],
            "relocate": p.relocate,
            "target_seniority": SENIORITIES[p.target_rank],
            "disliked_companies": [self._companies[c].company_id for c in sorted(p.disliked_companies)],
            "wish": p.wish,
            "arrangements": [wishes.ARRANGEMENTS[a] for a in sorted(p.arrangements)],
            "wants_to_lead": p.wants_to_lead,
            "leaving": wishes.FIELD_WORDS[p.leaving][0] if p.leaving else "",
            "career_move": self.occupations[p.move_to].label if p.move_to >= 0 else "",
            "community": p.tastes.community if p.tastes is not None else -1,
        }

    @functools.cached_property
    def companies(self) -> dict[str, Company]:
        return {c.company_id: c for c in self._companies}

    @functools.cached_property
    def jobs(self) -> dict[str, Job]:
        """The jobs open at the start (later postings arrive as `job.posted` events)."""
        return {j.job_id: self._job_payload(j) for j in self._jobs[: self._n_initial_jobs]}

    @functools.cached_property
    def members(self) -> dict[str, MemberProfile]:
        """Members' profiles at the start (later joiners and edits arrive as events)."""
        return {m.member_id: self._member_payload(m) for m in self._initial_members}

    # ---- events ----------------------------------------------------------------------

    def events(self) -> Iterator[Envelope]:
        """Every event, lazily, in event-time order. Calling it again replays from scratch."""
        if self._started:
            self._build()
        self._started = True
        return self._events()

    def _events(self) -> Iterator[Envelope]:
        cfg = self.config
        seq = 0
        t0 = cfg.start
        prefix = f"sim-{cfg.seed}-"
        for c in self._companies:
            yield CompanyUpserted(event_id=f"{prefix}{seq}", event_time=t0, payload=c)
            seq += 1
        for job in self._jobs[: self._n_initial_jobs]:
            self._open(job)
            yield JobPosted(event_id=f"{prefix}{seq}", event_time=t0, payload=self._job_payload(job))
            seq += 1
        for m in self._initial_members:
            yield MemberUpserted(event_id=f"{prefix}{seq}", event_time=t0, payload=self._member_payload(m))
            seq += 1
        for day in range(cfg.days):
            records = self._simulate_day(day)
            records.sort()  # (time, seq) is unique, so sorting never compares further
            base = day * _DAY
            for rec in records:
                yield self._envelope(f"{prefix}{seq}", t0 + timedelta(seconds=base + rec[0]), rec)
                seq += 1

    def _envelope(self, event_id: str, when, rec: tuple) -> Envelope:
        kind = rec[2]
        if kind == _K_ACTION:
            # One validation call on a plain dict: the cheapest validated build (actions
            # are most of the volume; model_construct is slower in pydantic 2).
            _, _, _, m, action, j, reason, query, surface = rec
            payload = {"member_id": self._members[m].member_id, "action": action, "surface": surface}
            if j >= 0:
                payload["job_id"] = self._jobs[j].job_id
            if reason is not None:
                payload["reason"] = reason
            if query is not None:
                payload["query"] = query
            return _validate_acted({"event_id": event_id, "event_time": when, "payload": payload})
        if kind == _K_MEMBER:
            return MemberUpserted(event_id=event_id, event_time=when, payload=rec[3])
        if kind == _K_JOB:
            return JobPosted(event_id=event_id, event_time=when, payload=self._job_payload(self._jobs[rec[3]]))
        if kind == _K_CLOSE:
            return JobClosedEvent(event_id=event_id, event_time=when, payload=JobClosed(job_id=self._jobs[rec[3]].job_id))
        if kind == _K_HIRE:
            job = self._jobs[rec[4]]
            return HireConfirmed(event_id=event_id, event_time=when, payload=Hire(
                member_id=self._members[rec[3]].member_id, job_id=job.job_id,
                company_id=self._companies[job.company].company_id))
        raise ValueError(f"unknown record kind {kind} in {rec!r}")

    def _open(self, job: JobState) -> None:
        job.open = True
        for pool in self._job_pools(job):
            pool.add(job.idx)

    def _close(self, job: JobState) -> None:
        job.open = False
        job.applicants.clear()
        job.applied_day.clear()
        for pool in self._job_pools(job):
            pool.remove(job.idx)

    def _job_pools(self, job: JobState) -> list[_Pool]:
        pools = [self._pools_all, self._pools_occ[job.occupation], self._pools_family[job.family],
                 self._pools_city[job.location]]
        for key in ((job.occupation, job.location), (job.family, job.location)):
            pool = self._pools_local.get(key)
            if pool is None:
                pool = self._pools_local[key] = _Pool()
            pools.append(pool)
        if job.promoted:
            pools.append(self._pools_promoted)
        if self._pools_company:
            pools.append(self._pools_company[job.company])
        return pools

    def _simulate_day(self, day: int) -> list[tuple]:
        cfg = self.config
        rng = random.Random(f"{cfg.seed}/day/{day}")
        records: list[tuple] = []

        def add(t: int, kind: int, *args) -> None:
            records.append((t, len(records), kind, *args))

        # Overnight: jobs past their lifetime close before anyone is online.
        closed_today = 0
        for job in self._expiring(day):
            add(_between(rng, 0, 6 * 3600 - 1), _K_CLOSE, job.idx)
            self._close(job)
            closed_today += 1

        # Employers review earlier days' applicants; a filled job closes right away.
        closing_at: dict[int, int] = {}
        for j in list(self._pending):
            job = self._jobs[j]
            if not job.open:
                del self._pending[j]
                continue
            if rng.random() >= cfg.review_rate:
                continue
            reviewed = [m for m, d in zip(job.applicants, job.applied_day) if d < day]
            if not reviewed:
                continue
            del job.applicants[: len(reviewed)]
            del job.applied_day[: len(reviewed)]
            if not job.applicants:
                del self._pending[j]
            min_years = text.min_years(SENIORITIES[job.rank])
            for m in reviewed:
                member = self._members[m]
                if member.hired_day >= 0:
                    continue
                ok = qualified(member, job, min_years)
                if rng.random() < (P_HIRE_QUALIFIED if ok else P_HIRE_UNQUALIFIED):
                    t = _between(rng, 9 * 3600, 18 * 3600)
                    add(t, _K_HIRE, m, j)
                    if job.occupation in member.move_targets:
                        self._record_move(day, "hire", member, job)
                    add(t + 60, _K_CLOSE, j)
                    closing_at[j] = t + 60
                    member.hired_day = day
                    member.daily_rate *= 0.15  # most hired members stop looking
                    break

        # Sessions: each member opens the site with their own daily chance.
        for member in self._members:
            if rng.random() < member.daily_rate:
                start = _between(rng, 6 * 3600, 22 * 3600)
                self._session(rng, day, member, start, add, closing_at)

        for j in closing_at:
            self._close(self._jobs[j])
            closed_today += 1

        # New postings replace today's closures. Today's sessions are already drawn,
        # so a posting is first shown tomorrow.
        lo, hi = cfg.job_lifetime_days
        for _ in range(closed_today):
            job = self._new_job(rng, posted_day=day, close_day=day + _between(rng, lo, hi))
            self.truth._jobs[job.job_id] = job
            add(_between(rng, 7 * 3600, 19 * 3600), _K_JOB, job.idx)
            self._open(job)

        # Joiners: cold-start members (no history yet), active from tomorrow.
        joiners = cfg.n_members * cfg.new_members_per_day
        for _ in range(int(joiners) + (rng.random() < joiners % 1)):
            member = self._new_member(rng, rate=self._draw_rate(rng))
            self.truth._members[member.member_id] = member
            add(_between(rng, 6 * 3600, 23 * 3600), _K_MEMBER, self._member_payload(member))
        return records

    def _expiring(self, day: int) -> list[JobState]:
        return [self._jobs[j] for j in self._by_close_day.pop(day, []) if self._jobs[j].open]

    def _session(self, rng, day, m: MemberState, t: int, add, closing_at: dict[int, int]) -> None:
        cfg = self.config
        shown: list[tuple[int, Surface]] = []
        if rng.random() < cfg.profile_update_rate:
            self._update_profile(rng, m)
            add(t, _K_MEMBER, self._member_payload(m))
            t += _between(rng, 5, 60)
        if rng.random() < cfg.search_rate:
            query, results = self._search(rng, m)
            add(t, _K_ACTION, m.idx, ActionType.SEARCH, -1, None, query, Surface.SEARCH)
            t += _between(rng, 2, 20)
            shown.extend((j, Surface.SEARCH) for j in results)
        # Graph signals (off: no draws here). A session's attention is limited: what a
        # mover's search or a look at a favourite employer shows replaces recommendations.
        own_looks = 0
        if m.prefs.move_to >= 0 and rng.random() < careers.SEARCH_RATE:
            # a mover looks for the occupation they want to move into, by its name
            query, results = self._move_search(rng, m)
            add(t, _K_ACTION, m.idx, ActionType.SEARCH, -1, None, query, Surface.SEARCH)
            t += _between(rng, 2, 20)
            shown.extend((j, Surface.SEARCH) for j in results)
            own_looks += len(results)
        tastes = m.prefs.tastes
        if tastes is not None and rng.random() < communities.BROWSE_RATE * min(1.0, tastes.strength):
            # a look at a favourite employer's open jobs: a search by its name
            c = tastes.favourites[int(rng.random() * len(tastes.favourites))]
            pool = self._pools_company[c]
            if len(pool):
                add(t, _K_ACTION, m.idx, ActionType.SEARCH, -1, None, self._companies[c].name, Surface.SEARCH)
                t += _between(rng, 2, 20)
                for _ in range(min(3, len(pool))):
                    shown.append((pool.choice(rng), Surface.SEARCH))
                    own_looks += 1
        for _ in range(max(1, cfg.recommendations_per_session - own_looks) if own_looks else
                       cfg.recommendations_per_session):
            j = self._recommend(rng, m)
            if j is not None:
                shown.append((j, Surface.RECOMMENDATIONS))
        if rng.random() < cfg.promoted_rate:
            j = self._pools_promoted.choice(rng)
            if j is not None:
                shown.append((j, Surface.PROMOTED))

        seen_now: set[int] = set()
        for j, surface in shown:
            if j in seen_now or closing_at.get(j, _NEVER) <= t:
                continue
            seen_now.add(j)
            job = self._jobs[j]
            add(t, _K_ACTION, m.idx, ActionType.VIEW, j, None, None, surface)
            t += _between(rng, 3, 40)
            a = affinity(m, job)
            if rng.random() < p_click(a):
                add(t, _K_ACTION, m.idx, ActionType.CLICK, j, None, None, surface)
                t += _between(rng, 10, 120)
                if rng.random() < p_save(a):
                    add(t, _K_ACTION, m.idx, ActionType.SAVE, j, None, None, surface)
                    t += _between(rng, 2, 10)
                if rng.random() < p_apply(a) and closing_at.get(j, _NEVER) > t and j not in m.applied:
                    add(t, _K_ACTION, m.idx, ActionType.APPLY, j, None, None, surface)
                    t += _between(rng, 30, 300)
                    m.applied.add(j)
                    if job.occupation in m.move_targets:
                        self._record_move(day, "apply", m, job)
                    job.applicants.append(m.idx)
                    job.applied_day.append(day)
                    self._pending[j] = None
            elif rng.random() < p_dismiss(a):
                if j in m.recent_jobs and rng.random() < 0.5:
                    reason = DismissReason.ALREADY_SEEN
                elif rng.random() < 0.05:
                    reason = DismissReason.OTHER  # people don't always say why
                else:
                    reason = dismiss_reason(m, job)
                add(t, _K_ACTION, m.idx, ActionType.DISMISS, j, reason, None, surface)
                t += _between(rng, 2, 10)
            if j not in m.recent_jobs:
                m.recent_jobs.append(j)
                if len(m.recent_jobs) > 30:
                    del m.recent_jobs[0]

    def _record_move(self, day: int, kind: str, m: MemberState, job: JobState) -> None:
        self.truth.career_moves.append((day, kind, m.member_id, job.job_id, self.occupations[m.occupation].label,
                                        self.occupations[job.occupation].label))

    def _search(self, rng: random.Random, m: MemberState) -> tuple[str, list[int]]:
        """A query for what the member wants, and the open jobs a search engine returns."""
        results: list[int] = []
        if rng.random() < 0.7 or not m.skills:
            wanted = m.prefs.occupations
            occ = wanted[0] if rng.random() < 0.6 else rng.choice(wanted)
            query = self.occupations[occ].label
            if m.prefs.wish and rng.random() < 0.4:  # "nurse remote", "lead nurse"
                query = wishes.query_with_wish(query, m.prefs.arrangements, m.prefs.wants_to_lead)
            in_city = rng.random() < 0.25
            if in_city:
                query += " " + CITIES[m.prefs.locations[0]]
            occ_choices = [occ]
        else:
            skill = rng.choice(m.skills)
            in_city = False
            query = self._skills[skill]
            occ_choices = self._skill_occs.get(skill) or [m.occupation]
        city = m.prefs.locations[0] if in_city or rng.random() < 0.5 else -1
        for _ in range(_between(rng, 3, 6)):
            occ = rng.choice(occ_choices)
            key = occ if rng.random() < 0.7 else self.occupations[occ].family
            pool = self._local_pool(key, city) if city >= 0 else _EMPTY_POOL
            if not len(pool):
                pool = self._pools_occ[key] if isinstance(key, int) else self._pools_family[key]
            j = pool.choice(rng)
            if j is not None:
                results.append(j)
        return query[:200], results

    def _move_search(self, rng: random.Random, m: MemberState) -> tuple[str, list[int]]:
        """A search for the career path's target occupation: its open jobs, near home half
        of the time."""
        occ = m.prefs.move_to
        city = m.prefs.locations[0] if rng.random() < 0.5 else -1
        local = self._local_pool(occ, city) if city >= 0 else _EMPTY_POOL
        pool = local if len(local) else self._pools_occ[occ]
        results = [j for _ in range(_between(rng, 4, 8)) if (j := pool.choice(rng)) is not None]
        return self.occupations[occ].label[:200], results

    def _recommend(self, rng: random.Random, m: MemberState) -> int | None:
        """The platform's own simple recommender: it sees the profile, never the hidden
        wishes, and prefers the member's city and level within their field."""
        r = rng.random()
        family = self.occupations[m.occupation].family
        if r < 0.3:
            pools = (self._local_pool(m.occupation, m.location), self._pools_occ[m.occupation])
        elif r < 0.65:
            pools = (self._local_pool(family, m.location), self._pools_family[family])
        elif r < 0.8:
            pools = (self._pools_city[m.location],)
        else:
            pools = ()
        pool = next((p for p in pools if len(p)), self._pools_all)
        j = pool.choice(rng)
        for _ in range(2):  # a couple of tries at a job near the member's level
            if j is None or abs(self._jobs[j].rank - m.rank) <= 1:
                break
            j = pool.choice(rng)
        return j

    def _local_pool(self, occupation_or_family: int | str, city: int) -> _Pool:
        pool = self._pools_local.get((occupation_or_family, city))
        return pool if pool is not None else _EMPTY_POOL

    def _update_profile(self, rng: random.Random, m: MemberState) -> None:
        """A member learns a skill of their field and the profile's years move on."""
        missing = [s for s in self._occ_skills[m.occupation][:25] if s not in m.skills]
        if missing:
            m.set_skills(m.skills + rng.sample(missing, min(len(missing), rng.randint(1, 2))))
        hi = SENIORITY_YEARS[SENIORITIES[m.rank]][1]
        m.years = round(min(hi, m.years + 0.1), 1)


def _between(rng: random.Random, lo: int, hi: int) -> int:
    """rng.randint's distribution at a fraction of its cost (hot path)."""
    return lo + int(rng.random() * (hi - lo + 1))


def _cumulative(weights: list[float]):
    total = 0.0
    for w in weights:
        total += w
        yield total


def _pick(rng: random.Random, cum_weights: list[float]) -> int:
    """Index drawn with the given cumulative weights (bisect, no list copies)."""
    from bisect import bisect_right

    i = bisect_right(cum_weights, rng.random() * cum_weights[-1])
    return min(i, len(cum_weights) - 1)


def _city_idx(rng: random.Random) -> int:
    return _pick(rng, _CITY_CUM)


def _city(rng: random.Random) -> str:
    return CITIES[_city_idx(rng)]


_CITY_CUM = list(_cumulative(list(CITY_WEIGHTS)))
