"""The marketplace simulator: determinism, realism, behaviour driven by hidden truth."""
from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.schemas import (
    ActionType, DismissReason, Seniority, parse, serialize, topic_of,
)
from streams.simulator import (
    SENIORITY_YEARS, Marketplace, MarketplaceConfig, read_jsonl, write_jsonl,
)
from streams.simulator.config import events_per_member_day
from streams.simulator.taxonomy import esco_rows
from streams.simulator.text import split_title, title_case

REPO = Path(__file__).resolve().parent.parent
SMALL = MarketplaceConfig(seed=11, n_members=400, n_companies=40, n_jobs=800, days=12)


def _digest(config: MarketplaceConfig) -> str:
    h = hashlib.sha256()
    for ev in Marketplace(config).events():
        h.update(serialize(ev))
        h.update(b"\n")
    return h.hexdigest()


@pytest.fixture(scope="module")
def run():
    sim = Marketplace(SMALL)
    return sim, list(sim.events())


def _actions(events, action: ActionType):
    return [ev for ev in events if ev.type == "member.action" and ev.payload.action is action]


# ---- determinism ---------------------------------------------------------------------


def test_same_seed_same_bytes_and_other_seed_differs():
    tiny = MarketplaceConfig(seed=3, n_members=80, n_companies=8, n_jobs=150, days=4)
    assert _digest(tiny) == _digest(tiny)
    assert _digest(tiny) != _digest(MarketplaceConfig(seed=4, n_members=80, n_companies=8, n_jobs=150, days=4))


def test_bytes_do_not_depend_on_python_hash_seed():
    # Iterating a set of strings would make output differ between processes.
    code = (
        "import hashlib; from streams.schemas import serialize;"
        "from streams.simulator import Marketplace, MarketplaceConfig;"
        "h = hashlib.sha256();"
        "[h.update(serialize(e) + b'\\n') for e in Marketplace(MarketplaceConfig("
        "seed=3, n_members=80, n_companies=8, n_jobs=150, days=4)).events()];"
        "print(h.hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert digests == {_digest(MarketplaceConfig(seed=3, n_members=80, n_companies=8, n_jobs=150, days=4))}


def test_calling_events_again_replays_the_same_run():
    sim = Marketplace(MarketplaceConfig(seed=5, n_members=60, n_companies=6, n_jobs=100, days=3))
    first = [serialize(e) for e in sim.events()]
    second = [serialize(e) for e in sim.events()]
    assert first == second


def test_events_is_a_lazy_generator():
    sim = Marketplace(MarketplaceConfig(seed=5, n_members=60, n_companies=6, n_jobs=100, days=30))
    simulated_days = []
    original = sim._simulate_day
    sim._simulate_day = lambda day: simulated_days.append(day) or original(day)
    events = sim.events()
    assert inspect.isgenerator(events)
    upserts = 60 + 6 + 100
    for _ in range(upserts + 1):  # every entity, then the first event of day 0
        next(events)
    assert simulated_days == [0]  # day 1..29 not generated yet


# ---- realism ---------------------------------------------------------------------------


def test_every_event_validates_ids_are_sequential_and_times_never_go_back(run):
    _, events = run
    for n, ev in enumerate(events):
        assert parse(topic_of(ev), serialize(ev)) == ev
        assert ev.event_id == f"sim-{SMALL.seed}-{n}"
    times = [ev.event_time for ev in events]
    assert all(a <= b for a, b in zip(times, times[1:]))
    assert times[0] == SMALL.start
    kinds = [ev.type for ev in events[: 40 + 800 + 400]]
    assert kinds == ["company.upserted"] * 40 + ["job.posted"] * 800 + ["member.upserted"] * 400


def test_titles_occupations_and_skills_come_from_the_taxonomies(run):
    _, events = run
    occupation_heads = _row_heads(esco_rows("occupations.csv"))
    skill_heads = _row_heads(esco_rows("skills.csv"))
    occupations, skills = set(), set()
    for ev in events:
        if ev.type in ("member.upserted", "job.posted"):
            p = ev.payload
            label, seniority = split_title(p.title)
            assert label == title_case(p.occupation), p.title
            assert seniority in (None, p.seniority), p.title
            occupations.add(p.occupation)
            skills.update(p.skills)
    assert len(occupations) > 30 and len(skills) > 300
    assert occupations <= occupation_heads, occupations - occupation_heads
    assert skills <= skill_heads, skills - skill_heads


def _row_heads(rows, max_words: int = 14) -> set[str]:
    """Every run of opening words of each raw ESCO row (whitespace normalised: ESCO has
    the odd double space inside a label). A label is one of these heads of its row."""
    heads = set()
    for row in rows:
        words = row.split()
        heads.update(" ".join(words[:k]) for k in range(1, min(max_words, len(words)) + 1))
    return heads


def test_years_of_experience_fit_the_seniority(run):
    _, events = run
    levels = Counter()
    for ev in events:
        if ev.type == "member.upserted":
            lo, hi = SENIORITY_YEARS[ev.payload.seniority]
            assert lo <= ev.payload.years_experience <= hi, ev.payload
            levels[ev.payload.seniority] += 1
    assert set(levels) == set(Seniority) - {Seniority.UNKNOWN}  # unknown is for imported data; the simulator knows


def test_no_action_on_a_job_before_it_is_posted_or_after_it_closed(run):
    _, events = run
    posted, closed = {}, {}
    for ev in events:
        if ev.type == "job.posted":
            posted[ev.payload.job_id] = ev.event_time
        elif ev.type == "job.closed":
            closed[ev.payload.job_id] = ev.event_time
        elif ev.type == "member.action" and ev.payload.job_id:
            job_id = ev.payload.job_id
            assert job_id in posted and job_id not in closed, ev
    assert len(closed) > 50


def test_hires_follow_an_application_and_close_the_job(run):
    _, events = run
    applied, hired_jobs, hired_members = set(), [], set()
    for ev in events:
        if ev.type == "member.action" and ev.payload.action is ActionType.APPLY:
            assert (ev.payload.member_id, ev.payload.job_id) not in applied, "applied twice"
            applied.add((ev.payload.member_id, ev.payload.job_id))
        elif ev.type == "hire.confirmed":
            assert (ev.payload.member_id, ev.payload.job_id) in applied
            assert ev.payload.member_id not in hired_members, "hired twice"
            hired_members.add(ev.payload.member_id)
            hired_jobs.append(ev.payload.job_id)
        elif ev.type == "job.closed" and ev.payload.job_id in hired_jobs:
            hired_jobs.remove(ev.payload.job_id)
    assert hired_jobs == []  # every filled job was closed


def test_search_queries_and_surfaces(run):
    _, events = run
    searches = _actions(events, ActionType.SEARCH)
    assert len(searches) > 100 and all(s.payload.query for s in searches)
    surfaces = Counter(v.payload.surface.value for v in _actions(events, ActionType.VIEW))
    assert set(surfaces) == {"recommendations", "search", "promoted"}
    jobs = {ev.payload.job_id: ev.payload for ev in events if ev.type == "job.posted"}
    promoted_views = [v for v in _actions(events, ActionType.VIEW) if v.payload.surface.value == "promoted"]
    assert all(jobs[v.payload.job_id].promoted for v in promoted_views)


def test_some_members_are_cold_start_and_some_join_later(run):
    sim, events = run
    per_member = Counter(ev.payload.member_id for ev in events if ev.type == "member.action")
    counts = [per_member.get(m, 0) for m in sim.members]
    assert sum(c <= 3 for c in counts) >= 0.05 * len(counts)
    assert max(counts) >= 50
    joiners = {ev.payload.member_id for ev in events[1240:] if ev.type == "member.upserted"} - set(sim.members)
    assert joiners


# ---- behaviour follows the hidden truth ---------------------------------------------------


def test_apply_rate_rises_with_hidden_affinity(run):
    sim, events = run
    edges = (0.0, 0.05, 0.15, 0.3, 0.5, 1.01)
    views, applies = Counter(), Counter()

    def bucket(ev) -> int:
        a = sim.truth.affinity(ev.payload.member_id, ev.payload.job_id)
        return next(i for i in range(len(edges) - 1) if a < edges[i + 1])

    for ev in _actions(events, ActionType.VIEW):
        views[bucket(ev)] += 1
    for ev in _actions(events, ActionType.APPLY):
        applies[bucket(ev)] += 1
    rates = [applies[b] / views[b] for b in range(len(edges) - 1)]
    assert all(views[b] >= 50 for b in range(len(edges) - 1)), views
    assert all(later >= 0.8 * earlier for earlier, later in zip(rates, rates[1:])), rates
    assert rates[-1] > 10 * rates[0], rates


def test_hires_go_to_qualified_applicants_far_more_often(run):
    sim, events = run
    applications = {(ev.payload.member_id, ev.payload.job_id) for ev in _actions(events, ActionType.APPLY)}
    hires = {(ev.payload.member_id, ev.payload.job_id) for ev in events if ev.type == "hire.confirmed"}
    by_fit = defaultdict(lambda: [0, 0])  # qualified -> [applications, hires]
    for pair in applications:
        q = sim.truth.qualified(*pair)
        by_fit[q][0] += 1
        by_fit[q][1] += pair in hires
    (apps_q, hires_q), (apps_u, hires_u) = by_fit[True], by_fit[False]
    assert hires_q >= 10 and apps_u >= 20, dict(by_fit)
    assert hires_q / apps_q > 5 * (hires_u / apps_u), dict(by_fit)


def test_dismiss_reasons_name_the_actual_mismatch(run):
    sim, events = run
    profiles, jobs = {}, {}
    reasons = Counter()
    ranks = {s: i for i, s in enumerate(Seniority)}
    for ev in events:
        if ev.type == "member.upserted":
            profiles[ev.payload.member_id] = ev.payload
        elif ev.type == "job.posted":
            jobs[ev.payload.job_id] = ev.payload
        elif ev.type == "member.action" and ev.payload.action is ActionType.DISMISS:
            p, job = ev.payload, jobs[ev.payload.job_id]
            member, wants = profiles[p.member_id], sim.truth.preferences(p.member_id)
            reasons[p.reason] += 1
            if p.reason is DismissReason.TOO_SENIOR:
                assert ranks[job.seniority] > ranks[member.seniority]
                assert ranks[job.seniority] > ranks[wants["target_seniority"]]
            elif p.reason is DismissReason.TOO_JUNIOR:
                assert ranks[job.seniority] < ranks[wants["target_seniority"]]
            elif p.reason is DismissReason.WRONG_LOCATION:
                assert job.location not in wants["locations"]
            elif p.reason is DismissReason.NOT_MY_FIELD:
                assert job.occupation not in wants["occupations"]
            elif p.reason is DismissReason.COMPANY:
                assert job.company_id in wants["disliked_companies"]
    for reason in (DismissReason.TOO_SENIOR, DismissReason.TOO_JUNIOR,
                   DismissReason.WRONG_LOCATION, DismissReason.NOT_MY_FIELD):
        assert reasons[reason] >= 20, reasons


def test_truth_rejects_unknown_ids_with_the_id_in_the_message(run):
    sim, _ = run
    with pytest.raises(KeyError, match="nobody"):
        sim.truth.affinity("nobody", next(iter(sim.jobs)))


# ---- sizing and files ---------------------------------------------------------------


@pytest.mark.parametrize("n_events", [3_000, 30_000])
def test_for_events_sizes_a_run_to_about_that_many_events(n_events):
    config = MarketplaceConfig.for_events(n_events, seed=2)
    produced = sum(1 for _ in Marketplace(config).events())
    assert 0.7 * n_events <= produced <= 1.3 * n_events, (config, produced)


def test_for_events_keeps_a_ten_million_event_run_within_memory_bounds():
    config = MarketplaceConfig.for_events(10_000_000)
    assert config.n_members <= 200_000 and config.n_jobs <= 100_000
    estimate = config.n_members * (config.days * events_per_member_day(config.days) + 3.2)
    assert 0.8e7 <= estimate <= 1.2e7


def test_write_jsonl_then_read_back(tmp_path):
    sim = Marketplace(MarketplaceConfig(seed=5, n_members=60, n_companies=6, n_jobs=100, days=3))
    path = tmp_path / "events.jsonl"
    n = write_jsonl(sim.events(), path)
    lines = path.read_bytes().splitlines()
    assert n == len(lines) > 200
    assert [serialize(e) for e in read_jsonl(path)] == lines
    assert [serialize(e) for e in sim.events()] == lines


def test_config_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="n_members"):
        MarketplaceConfig(n_members=0)
    with pytest.raises(ValueError, match="at least 100"):
        MarketplaceConfig.for_events(10)


def test_cli_writes_the_same_bytes_as_the_api(tmp_path):
    from click.testing import CliRunner

    from infra.cli import main

    out = tmp_path / "sim.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--seed", "9", "--events", "2000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output and "member.action:view" in result.output
    expected = [serialize(e) for e in Marketplace(MarketplaceConfig.for_events(2000, seed=9)).events()]
    assert out.read_bytes().splitlines() == expected


def test_cli_needs_somewhere_to_send_events():
    from click.testing import CliRunner

    from infra.cli import main

    result = CliRunner().invoke(main, ["simulate", "--events", "2000"])
    assert result.exit_code != 0 and "--out" in result.output


def test_cli_to_kafka_hands_every_event_to_the_producer(monkeypatch, tmp_path):
    # The producer itself is tested against a real broker in its own tests; this pins
    # the wiring (all events, in order, with the bootstrap given) without one.
    from click.testing import CliRunner

    import streams.producer
    from infra.cli import main

    sent = {}

    def fake_produce_events(events, bootstrap, **overrides):
        sent["bootstrap"] = bootstrap
        sent["lines"] = [serialize(e) for e in events]
        return streams.producer.ProduceReport(sent=len(sent["lines"]))

    monkeypatch.setattr(streams.producer, "produce_events", fake_produce_events)
    out = tmp_path / "copy.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--seed", "9", "--events", "2000", "--to-kafka",
                                       "--bootstrap", "127.0.0.1:1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = [serialize(e) for e in Marketplace(MarketplaceConfig.for_events(2000, seed=9)).events()]
    assert sent == {"bootstrap": "127.0.0.1:1", "lines": expected}
    assert out.read_bytes().splitlines() == expected  # --out alongside --to-kafka keeps a copy
