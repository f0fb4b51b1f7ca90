"""Wishes stated only in free text (streams/simulator/wishes.py): deterministic, only
in the about text, followed by the hidden truth and so by behaviour, and partly
written without the words a bag-of-words reader would match."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from streams.schemas import ActionType
from streams.simulator import CITIES, Marketplace, MarketplaceConfig, wishes
from streams.simulator.truth import ARRANGEMENT_MISMATCH, NOT_LEADING, affinity, location_factor

# Latent communities also weigh the (hidden) work arrangement: off here, so the wishes
# are measured alone (tests/test_simulator_graph_signals.py measures communities).
WISHES = MarketplaceConfig(seed=13, n_members=400, n_companies=40, n_jobs=800, days=1, community_strength=0.0)
KINDS = ("arrangement", "lead", "field")


@pytest.fixture(scope="module")
def sim():
    return Marketplace(WISHES)


def _wishers(sim: Marketplace) -> dict[str, dict]:
    return {mid: w for mid in sim.members if (w := sim.truth.preferences(mid))["wish"]}


def test_wishes_are_deterministic_by_seed(sim):
    again = Marketplace(WISHES)
    assert _wishers(again) == _wishers(sim)
    assert [m.about for m in again.members.values()] == [m.about for m in sim.members.values()]
    other = Marketplace(dataclasses.replace(WISHES, seed=14))
    assert _wishers(other) != _wishers(sim)


def test_every_kind_occurs_at_about_the_configured_share(sim):
    found = _wishers(sim)
    kinds = Counter(w["wish"] for w in found.values())
    assert set(kinds) == set(KINDS), kinds
    assert 0.25 * len(sim.members) <= len(found) <= 0.45 * len(sim.members)  # share 0.35
    assert not _wishers(Marketplace(dataclasses.replace(WISHES, text_preference_share=0.0)))


def test_wishes_are_stated_only_in_free_text(sim):
    """Every structured field is the same with wishes on and off; the about text (and
    the job description, which states the arrangement) is all that changes."""
    plain = Marketplace(dataclasses.replace(WISHES, text_preference_share=0.0))
    found = _wishers(sim)
    for mid, profile in sim.members.items():
        before = plain.members[mid]
        assert profile.model_copy(update={"about": ""}) == before.model_copy(update={"about": ""})
        if mid in found:
            assert found[mid]["wish_text"] and found[mid]["wish_text"] in profile.about
            assert found[mid]["wish_text"] not in before.about
        else:
            assert profile.about == before.about
    for jid, job in sim.jobs.items():
        assert job.model_copy(update={"description": ""}) == plain.jobs[jid].model_copy(update={"description": ""})
    assert sim.companies == plain.companies


def test_jobs_state_their_arrangement_in_words_of_its_own(sim):
    for job_id, job in sim.jobs.items():
        state = sim.truth._jobs[job_id]
        words = wishes.tokens(job.description)
        assert not words.isdisjoint(wishes.ARRANGEMENT_WORDS[state.arrangement]), job.description
        if state.leads_people:  # a job that leads people says so in its title or level
            said = wishes.tokens(job.title) | {job.seniority.value}
            assert not said.isdisjoint(wishes.LEAD_WORDS | {"executive"}), job.title
    arrangements = Counter(sim.truth._jobs[j].arrangement for j in sim.jobs)
    assert all(arrangements[a] >= 0.1 * len(sim.jobs) for a in range(3)), arrangements


def test_a_share_of_statements_avoids_the_matching_jobs_words(sim):
    statements: dict[str, set[str]] = {k: set() for k in KINDS}
    literal = Counter()
    for mid, w in _wishers(sim).items():
        p = sim.truth.hidden_preferences(mid)
        if w["wish"] == "arrangement":
            target = set().union(*(wishes.ARRANGEMENT_WORDS[a] for a in p.arrangements))
        elif w["wish"] == "lead":
            target = set(wishes.LEAD_WORDS)
        else:  # the new field's name and its occupations' words
            new_major = sim.occupations[p.occupations[0]].major
            labels = [sim.occupations[o].label for o in p.occupations]
            target = wishes.tokens(" ".join([wishes.FIELD_WORDS[new_major][0], *labels]))
            target -= wishes.LABEL_STOPWORDS
        says_it = not wishes.tokens(w["wish_text"]).isdisjoint(target)
        assert says_it == w["wish_literal"], w
        literal[w["wish"], says_it] += 1
        statements[w["wish"]].add(w["wish_text"])
    for kind in KINDS:
        n = literal[kind, True] + literal[kind, False]
        assert literal[kind, False] >= max(1, 0.25 * n), literal  # a quarter or more unreadable
        assert literal[kind, True] >= 1, literal
    assert len(statements["arrangement"]) <= 15 and len(statements["lead"]) <= 7  # a fixed set


def _member_with(sim: Marketplace, kind: str):
    mid = next(mid for mid, w in _wishers(sim).items() if w["wish"] == kind)
    return sim.truth._members[mid]


def test_wishes_change_hidden_affinity_all_else_equal(sim):
    job = sim._jobs[0]
    m = _member_with(sim, "arrangement")
    accepted = min(m.prefs.arrangements)
    refused = min(a for a in range(3) if a not in m.prefs.arrangements)
    at_home = dataclasses.replace(job, location=m.prefs.locations[0])
    yes, no = (dataclasses.replace(at_home, arrangement=a) for a in (accepted, refused))
    assert affinity(m, no) == pytest.approx(ARRANGEMENT_MISMATCH * affinity(m, yes))

    # A member who asked for remote work does not mind where a remote job's office is.
    m = next(m for m in sim._members if m.prefs.arrangements == {wishes.REMOTE} and not m.prefs.relocate)
    far = next(c for c in range(len(CITIES)) if c not in m.prefs.locations)
    remote, on_site = (dataclasses.replace(job, location=far, arrangement=a)
                       for a in (wishes.REMOTE, wishes.ON_SITE))
    assert location_factor(m.prefs, remote) == 1.0 and location_factor(m.prefs, on_site) < 0.2

    m = _member_with(sim, "lead")
    leads, does_not = (dataclasses.replace(job, leads_people=b) for b in (True, False))
    assert affinity(m, does_not) == pytest.approx(NOT_LEADING * affinity(m, leads))
    assert m.prefs.target_rank == m.rank + 1

    m = _member_with(sim, "field")
    new_occ = m.prefs.occupations[0]
    new = dataclasses.replace(job, occupation=new_occ, family=sim.occupations[new_occ].family)
    old = dataclasses.replace(job, occupation=m.occupation, family=sim.occupations[m.occupation].family)
    assert affinity(m, new) > 10 * affinity(m, old)
    assert sim.occupations[m.occupation].major == m.prefs.leaving

    # Without a wish, the hidden attributes do not matter.
    m = next(m for m in sim._members if not m.prefs.wish)
    assert len({affinity(m, dataclasses.replace(job, arrangement=a, leads_people=b))
                for a in range(3) for b in (True, False)}) == 1


def _rates_by_match(config: MarketplaceConfig, judge: Marketplace) -> Counter:
    """(matches the wish, action) -> count, for members with a wish in `judge`."""
    sim = judge if config == judge.config else Marketplace(config)
    counts = Counter()
    for ev in sim.events():
        if ev.type != "member.action" or not ev.payload.job_id:
            continue
        mid = ev.payload.member_id
        if mid not in judge.truth._members or not judge.truth.hidden_preferences(mid).wish:
            continue
        match = sim.truth.wish_match(mid, ev.payload.job_id, prefs=judge.truth.hidden_preferences(mid))
        counts[match, ev.payload.action] += 1
    return counts


def test_members_with_a_wish_apply_more_to_jobs_that_match_it():
    config = MarketplaceConfig(seed=5, n_members=300, n_companies=30, n_jobs=600, days=8,
                               text_preference_share=1.0)
    judge = Marketplace(config)
    with_wish = _rates_by_match(config, judge)
    without = _rates_by_match(dataclasses.replace(config, text_preference_share=0.0), judge)

    def lift(c: Counter, action: ActionType) -> float:
        return (c[True, action] / c[True, ActionType.VIEW]) / (c[False, action] / c[False, ActionType.VIEW])

    assert with_wish[True, ActionType.VIEW] >= 300 and with_wish[True, ActionType.APPLY] >= 15, with_wish
    assert lift(with_wish, ActionType.APPLY) > 3, with_wish
    assert lift(with_wish, ActionType.APPLY) > 2 * lift(without, ActionType.APPLY), (with_wish, without)
    assert lift(with_wish, ActionType.CLICK) > 1.5 * lift(without, ActionType.CLICK), (with_wish, without)


def test_config_rejects_a_share_outside_zero_to_one():
    with pytest.raises(ValueError, match="text_preference_share"):
        MarketplaceConfig(text_preference_share=1.5)


def test_cli_text_share_zero_writes_a_run_without_wishes(tmp_path):
    from click.testing import CliRunner

    from infra.cli import main
    from streams.schemas import serialize

    out = tmp_path / "plain.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--seed", "9", "--events", "2000", "--text-share", "0",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = MarketplaceConfig.for_events(2000, seed=9, text_preference_share=0.0)
    assert out.read_bytes().splitlines() == [serialize(e) for e in Marketplace(config).events()]
