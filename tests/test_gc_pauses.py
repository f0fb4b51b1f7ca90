"""The garbage collector's pauses as the serve worker records them (serving/online/gc_pauses.py).
Through a real worker: tests/test_http_api.py (frozen before /readyz says ready)."""
import gc
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.online.gc_pauses import GcPauses
from serving.online.service_metrics import ServiceMetrics


@pytest.fixture
def pauses():
    p = GcPauses()
    yield p
    p.close()
    gc.unfreeze()  # the rest of the test session collects as usual


def test_every_collection_is_timed_by_its_generation(pauses):
    gc.collect(0)
    gc.collect(2)
    f = pauses.figures()["collections"]
    assert f["gen0"]["count"] >= 1 and f["gen2"]["count"] >= 1
    assert f["gen2"]["longest_ms"] > 0 and f["gen2"]["total_ms"] >= f["gen2"]["longest_ms"]
    buckets, total = pauses.histogram(2)
    assert buckets[-1] == ("+Inf", f["gen2"]["count"]) and total * 1e3 == pytest.approx(f["gen2"]["total_ms"], abs=0.1)
    assert [n for _, n in buckets] == sorted(n for _, n in buckets)  # cumulative


def test_a_collection_set_off_inside_a_metrics_lock_neither_waits_on_it_nor_goes_unseen(pauses):
    """A collection runs its callbacks in whichever thread set it off, maybe one inside a
    prometheus-client lock (not reentrant; metrics allocate under them): a callback that
    observed a metric could wait on its own thread's lock for ever. Here every metric's
    lock is held while a collection runs; then /metrics shows it."""
    metrics = ServiceMetrics("m")
    metrics.watch_gc(pauses)
    metrics.stage.labels(stage="rank").observe(0.1)
    locks = [c._lock for c in list(metrics.registry._collector_to_names) if hasattr(c, "_lock")]
    assert len(locks) >= 5
    done = threading.Event()

    def collect_inside_the_locks():
        for lock in locks:
            lock.acquire()
        try:
            gc.collect(0)
            done.set()
        finally:
            for lock in locks:
                lock.release()

    threading.Thread(target=collect_inside_the_locks, daemon=True).start()
    assert done.wait(timeout=30), "the collection waited on a lock its own thread held"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(metrics.render().decode()) for s in family.samples}
    assert got[("hirestream_gc_pause_seconds_count", (("generation", "0"),))] >= 1


def test_freezing_leaves_what_was_alive_out_of_later_collections(pauses):
    kept = [[i] for i in range(50_000)]  # lists: containers the collector tracks and walks
    assert any(o is kept[0] for o in gc.get_objects(2) + gc.get_objects(1) + gc.get_objects(0))
    frozen = pauses.freeze()
    assert frozen >= len(kept)
    # in the permanent generation now, where no later collection walks them
    assert not any(o is kept[0] for o in gc.get_objects(2) + gc.get_objects(1) + gc.get_objects(0))
    # not ==: another thread (a leftover of an earlier test) may free a frozen object meanwhile,
    # and the count drops (a clean-clone `make test` read 817,470 after freezing 817,472)
    assert gc.get_freeze_count() <= frozen
    figures = pauses.figures()
    assert figures["before_freeze"]["gen2"]["count"] >= 1  # the freeze's own full collection
    assert figures["collections"]["gen2"]["count"] == 0  # counted afresh from the freeze
    full = figures["full_collection_ms"]
    assert full["before_freeze"] > 0 and full["after_freeze"] >= 0  # timed here, compared by bench/e2e.py
    later = ["made after"]
    walked = gc.get_objects(2) + gc.get_objects(1) + gc.get_objects(0)  # what a full collection walks
    assert not any(o is kept[0] for o in walked) and any(o is later for o in walked)
    del walked
    gc.collect(2)
    assert pauses.figures()["collections"]["gen2"]["count"] == 1


def test_a_closed_recorder_no_longer_hears_collections(pauses):
    pauses.close()
    gc.collect(0)
    assert pauses.figures()["collections"]["gen0"]["count"] == 0
