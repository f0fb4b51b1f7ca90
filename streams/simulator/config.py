"""The simulator's one configuration: sizes, dates and behaviour rates."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

SIM_START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday

# Measured on the default rates: events per member per simulated day, averaged over
# active, idle and cold-start members (it drifts down as hired members stop looking).
EVENTS_PER_MEMBER_DAY = {7: 2.6, 14: 2.4, 30: 2.33, 60: 2.05}  # 60: measured at 10M events


def events_per_member_day(days: int) -> float:
    return next((rate for d, rate in EVENTS_PER_MEMBER_DAY.items() if days <= d), 2.05)


@dataclass(frozen=True)
class MarketplaceConfig:
    seed: int = 7
    n_members: int = 1000
    n_companies: int = 100
    n_jobs: int = 2000  # open jobs at the start; new postings replace closed ones
    days: int = 14
    n_occupations: int = 0  # occupations in play; 0 = scale with n_jobs
    # Occupations drawn only from these SOC major groups ("29", "41", ...); empty: all.
    occupation_majors: tuple[str, ...] = ()
    start: datetime = SIM_START

    # behaviour
    active_rate: float = 0.3  # mean chance a regular member opens the site on a day
    cold_start_share: float = 0.1  # members who barely use the site
    cold_start_rate: float = 0.03  # their daily chance of a session
    new_members_per_day: float = 0.002  # joiners per day, as a share of n_members
    recommendations_per_session: int = 6
    search_rate: float = 0.35  # chance a session starts with a search
    promoted_rate: float = 0.35  # chance a session is shown a promoted job
    profile_update_rate: float = 0.01  # chance a session edits the profile
    promoted_share: float = 0.08  # share of jobs posted as promoted
    job_lifetime_days: tuple[int, int] = (14, 45)
    review_rate: float = 0.3  # chance an employer reviews a job's applicants on a day
    # Share of members with a wish stated only in their about text (remote only, leading
    # people, a change of field: wishes.py) that their hidden affinity follows, and jobs
    # whose descriptions state a work arrangement. 0 turns both off and gives the bytes
    # of the simulator before wishes existed: a benchmark's "without" arm.
    text_preference_share: float = 0.35
    # Graph signals (careers.py, communities.py). A share of applications and hires that
    # go along career paths to adjacent occupations (about this share; the realised
    # share is measured by tests/test_simulator_graph_signals.py), and latent
    # communities whose tastes over employers, industries and work style shape views,
    # clicks, applies and hires; no profile field or text states either. Both at 0
    # (`--career-move-share 0 --community-strength 0`) give the bytes of the simulator
    # before they existed, which the ranker checkpoints of 2026-12 were trained on.
    career_move_share: float = 0.25
    n_communities: int = 12
    community_strength: float = 1.0
    # Marks the held-out marketplace (held_out.py): tuning code refuses a config with it.
    # It changes no byte of the run.
    held_out: bool = False

    def __post_init__(self) -> None:
        for name in ("n_members", "n_companies", "n_jobs", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"MarketplaceConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.text_preference_share <= 1.0:
            raise ValueError(
                f"MarketplaceConfig.text_preference_share must be in [0, 1], got {self.text_preference_share}")
        if not 0.0 <= self.career_move_share <= 1.0:
            raise ValueError(
                f"MarketplaceConfig.career_move_share must be in [0, 1], got {self.career_move_share}")
        if self.community_strength < 0 or self.n_communities < 1:
            raise ValueError(f"MarketplaceConfig needs community_strength >= 0 and n_communities >= 1, got "
                             f"{self.community_strength}, {self.n_communities}")
        if self.start.tzinfo is None:
            raise ValueError(f"MarketplaceConfig.start must be timezone-aware, got {self.start!r}")

    @property
    def graph_signals(self) -> dict:
        """The settings of the signals a checkpoint must have been trained with to be
        compared on this marketplace (what `ranker.json` records as `sim_*`)."""
        return {"career_move_share": self.career_move_share, "community_strength": self.community_strength,
                "n_communities": self.n_communities}

    @property
    def occupations_in_play(self) -> int:
        return self.n_occupations or max(24, min(1500, self.n_jobs // 8))

    @classmethod
    def for_events(cls, n_events: int, seed: int = 7, **overrides) -> "MarketplaceConfig":
        """A config sized to produce about `n_events` events: within ~10% from 10k
        events up; tiny markets (a few thousand events) come out up to ~25% short,
        since their few jobs repeat within a session and repeats are not re-shown.

        Longer runs get more days (histories to learn from) and more members, capped
        at 200k members so the entities of a 10M-event run stay a few hundred MB.
        """
        if n_events < 100:
            raise ValueError(f"for_events needs at least 100 events, got {n_events}")
        days = 7 if n_events <= 20_000 else 14 if n_events <= 500_000 else 30 if n_events <= 3_000_000 else 60
        # +3.2: the member's own upsert, two jobs' and a tenth of a company's
        members = n_events / (days * events_per_member_day(days) + 3.2)
        members = int(max(20, min(200_000, members)))
        if members == 200_000:  # past the cap, more days carry the volume
            days = max(days, round((n_events / members - 3.2) / events_per_member_day(60)))
        jobs = max(20, min(100_000, 2 * members))
        cfg = cls(seed=seed, n_members=members, n_jobs=jobs, n_companies=max(5, jobs // 20), days=days)
        return replace(cfg, **overrides)
