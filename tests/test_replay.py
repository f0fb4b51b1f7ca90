"""Replay evaluation: time-correct state (no leakage), determinism, malformed lines."""
from __future__ import annotations

import numpy as np
import pytest

from serving.evaluation.eventlog import ReadReport, read_log, write_log
from serving.evaluation.replay import ReplayConfig, Replayer, Variant, replay_file
from serving.evaluation.report import clean as clean_json
from serving.evaluation.report import metrics_json, write_report
from serving.online.scorer import BM25Scorer, PopularityScorer
from streams.schemas import ActionType, MemberAction, MemberActed, Surface
from tests import factories as f


class SpyScorer:
    """Scores by popularity and remembers what the engine handed it at each call."""

    name = "spy"

    def __init__(self):
        self.calls = []

    def score(self, member_state, candidates, task, now, query=None):
        self.calls.append({
            "now": now,
            "history": [(it.event_id, it.event_time) for it in member_state.history],
            "jobs": [c.job.job_id for c in candidates],
            "counts": {c.job.job_id: dict(c.counts) for c in candidates},
        })
        return PopularityScorer().score(member_state, candidates, task, now, query)


def view(event_id, hours, job_id, member_id="m1", surface=Surface.RECOMMENDATIONS):
    return MemberActed(event_id=event_id, event_time=f.at(hours), payload=MemberAction(
        member_id=member_id, action=ActionType.VIEW, job_id=job_id, surface=surface))


def base_log():
    return [
        f.company("c1"),
        f.job_posted("p1", 0, job_id="j1"),
        f.job_posted("p2", 0, job_id="j2", company_id="c2", company_name="Globex"),
        f.member_upserted("u1", 0),
        f.member_upserted("u2", 0, member_id="m2"),
        f.action("x1", "click", 0.5, member_id="m2", job_id="j2"),
        view("v1", 1, "j1"),  # the evaluated slate: j1 and j2 shown to m1 at 1h
        view("v2", 1.01, "j2"),
    ]


def later_events():
    """Events after the slate, each of which would change the answer if it leaked in."""
    return [
        f.action("d1", "dismiss", 2, job_id="j1", reason="company"),  # blocks c1: j1 would vanish
        f.job_posted("p3", 3, job_id="j3", title="Data Engineer", company_id="c3"),  # would become a candidate
        *[f.action(f"k{i}", "click", 4 + i, member_id="m2", job_id="j1") for i in range(5)],  # popularity
    ]


def run(events, scorer):
    cfg = ReplayConfig(tasks=("click",), retrieve_k=10)
    return Replayer([Variant("spy", scorer)], cfg).run(events)


def first_engine_call(spy):
    # per slate: one call on the shown jobs, then one on the engine path's retrieval
    return [c for c in spy.calls if c["now"] == f.at(1).timestamp()]


def test_a_point_sees_exactly_the_state_of_its_time():
    spy = SpyScorer()
    run(base_log() + later_events(), spy)
    slate_call, engine_call = first_engine_call(spy)
    assert slate_call["jobs"] == ["j1", "j2"]
    assert slate_call["history"] == []  # m1's own view v1 is what marks the point: not yet folded
    assert slate_call["counts"] == {"j1": {}, "j2": {"click": 1}}  # m2's later clicks on j1 absent
    assert "j1" in engine_call["jobs"]  # the later dismiss (blocking c1) has not happened yet
    assert "j3" not in engine_call["jobs"]  # not posted yet


def test_the_same_events_earlier_do_change_the_answer():
    """The control: moved before the slate, the 'later' events change what is scored,
    so the test above would fail if state leaked from the future."""
    spy = SpyScorer()
    early = [f.action("d1", "dismiss", 0.6, job_id="j1", reason="company"),
             f.job_posted("p3", 0.7, job_id="j3", title="Data Engineer", company_id="c3"),
             *[f.action(f"k{i}", "click", 0.8 + i / 100, member_id="m2", job_id="j1") for i in range(5)]]
    log = base_log()
    run(log[:6] + early + log[6:], spy)
    slate_call, engine_call = first_engine_call(spy)
    assert [e for e, _ in slate_call["history"]] == ["d1"]
    assert slate_call["counts"]["j1"] == {"click": 5, "dismiss": 1}
    assert "j1" not in engine_call["jobs"] and "j3" in engine_call["jobs"]


def test_labels_come_from_the_future_within_the_window():
    events = base_log() + [f.action("c1", "click", 1.5, job_id="j2"), f.action("c2", "click", 200, job_id="j1")]
    result = run(events, SpyScorer())
    cell = result.metrics["spy"]["all"]["click"]["all"]
    assert (cell["impressions"], cell["positives"]) == (2, 1)  # the click after 3 days does not count


def test_out_of_order_log_is_refused():
    events = base_log()
    with pytest.raises(ValueError, match="event-time order"):
        run(events[:6] + [events[7], events[6]], SpyScorer())


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
    from streams.simulator import Marketplace, MarketplaceConfig

    sim = Marketplace(MarketplaceConfig(seed=3, n_members=80, n_companies=8, n_jobs=150, days=3))
    path = tmp_path_factory.mktemp("replay") / "small.jsonl"
    write_log(sim.events(), path)
    return path


def variants():
    bm25 = BM25Scorer()
    return [Variant("popularity", PopularityScorer()), Variant("bm25", bm25),
            Variant("bm25/term", bm25, retrieval="term", sample=0.5)]


CONFIG = ReplayConfig(retrievals={"hybrid": "hybrid,exact", "term": "term,exact"}, engine_sample=0.5, seed=1)


def test_two_replays_give_byte_identical_metrics(small_log, tmp_path):
    a = replay_file(small_log, variants(), CONFIG)
    b = replay_file(small_log, variants(), CONFIG)
    assert a.replay["points"]["slate"] > 20
    assert metrics_json(a) == metrics_json(b)
    pa, pb = write_report(a, tmp_path / "a"), write_report(b, tmp_path / "b")
    assert pa["metrics"].read_bytes() == pb["metrics"].read_bytes()
    # a different seed samples other slates: the figures are not constant by accident
    c = replay_file(small_log, variants(), ReplayConfig(retrievals=CONFIG.retrievals, engine_sample=0.5, seed=2))
    assert metrics_json(c) != metrics_json(a)


def test_malformed_lines_are_skipped_and_counted(small_log, tmp_path):
    lines = small_log.read_bytes().splitlines(keepends=True)
    bad = [b"{not json\n", b'{"type": "member.action", "payload": {}}\n', b"[1, 2]\n",
           next(ln for ln in lines if b'"job.posted"' in ln).replace(b'"job.posted"', b'"job.exploded"')]
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"".join(lines[:10] + bad + lines[10:]))
    report = ReadReport()
    n = sum(1 for _ in read_log(broken, report))
    assert (n, report.n_skipped) == (len(lines), 4)
    assert [ln for ln, _ in report.skipped] == [11, 12, 13, 14]
    assert "not JSON" in report.skipped[0][1] and "job.exploded" in report.skipped[3][1]
    result = replay_file(broken, variants(), CONFIG)
    clean = replay_file(small_log, variants(), CONFIG)
    assert result.replay["skipped_lines"] == 4 and result.replay["events"] == clean.replay["events"]
    assert clean_json(result.metrics) == clean_json(clean.metrics)  # NaN-safe comparison


def test_report_has_tables_json_and_images(small_log, tmp_path):
    import matplotlib.image as mpimg

    result = replay_file(small_log, variants(), CONFIG)
    paths = write_report(result, tmp_path / "report")
    md = paths["report"].read_text()
    assert "| popularity |" in md and "## Task `apply` by surface" in md
    for png in paths["plots"]:
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert np.ptp(img) > 0  # not a blank canvas
    for v in ("popularity", "bm25"):
        cell = result.metrics[v]["all"]["click"]["all"]
        assert 0.0 <= cell["auc"] <= 1.0 and cell["impressions"] > 0


def test_make_run_replays_only_the_newest_checkpoints(tmp_path):
    """`make run` replays at most HIRESTREAM_RUN_RANKERS checkpoints, the newest: a
    machine that kept every experiment's folder must not replay them all."""
    import os

    from infra.commands.run import newest_checkpoints
    from serving.evaluation.replay import find_rankers

    for age, name in enumerate(["newest", "middle", "oldest"]):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("ranker.json", "config.json"):
            (folder / f).write_text("{}")
        os.utime(folder / "ranker.json", (1e9 - age * 60, 1e9 - age * 60))
    (tmp_path / "not-a-ranker").mkdir()
    found = find_rankers(tmp_path)
    assert sorted(p.name for p in found) == ["middle", "newest", "oldest"]
    used, older = newest_checkpoints(found, 2)
    assert [p.name for p in used] == ["newest", "middle"] and [p.name for p in older] == ["oldest"]
    used, older = newest_checkpoints(found, 0)
    assert [p.name for p in used] == ["newest", "middle", "oldest"] and older == []
