"""The garbage collector's pauses as the serve worker records them (serving/online/gc_pauses.py).
Through a real worker: tests/test_http_api.py (frozen before /readyz says ready)."""
import gc

import pytest

from serving.online.gc_pauses import GcPauses


@pytest.fixture
def pauses():
    seen = []
    p = GcPauses(observe=lambda generation, seconds: seen.append((generation, seconds)))
    yield p, seen
    p.close()
    gc.unfreeze()  # the rest of the test session collects as usual


def test_every_collection_is_timed_by_its_generation(pauses):
    p, seen = pauses
    gc.collect(0)
    gc.collect(2)
    f = p.figures()["collections"]
    assert f["gen0"]["count"] >= 1 and f["gen2"]["count"] >= 1
    assert f["gen2"]["longest_ms"] > 0 and f["gen2"]["total_ms"] >= f["gen2"]["longest_ms"]
    assert max(s for g, s in seen if g == 2) * 1e3 == pytest.approx(f["gen2"]["longest_ms"], abs=0.05)


def test_freezing_leaves_what_was_alive_out_of_later_collections(pauses):
    p, _ = pauses
    kept = [[i] for i in range(50_000)]  # lists: containers the collector tracks and walks
    assert any(o is kept[0] for o in gc.get_objects(2) + gc.get_objects(1) + gc.get_objects(0))
    frozen = p.freeze()
    assert frozen == gc.get_freeze_count() >= len(kept)
    assert p.figures()["before_freeze"]["gen2"]["count"] >= 1  # the freeze's own full collection
    assert p.figures()["collections"]["gen2"]["count"] == 0  # counted afresh from the freeze
    full = p.figures()["full_collection_ms"]
    assert full["before_freeze"] > 0 and full["after_freeze"] >= 0  # timed here, compared by bench/e2e.py
    later = ["made after"]
    walked = gc.get_objects(2) + gc.get_objects(1) + gc.get_objects(0)  # what a full collection walks
    assert not any(o is kept[0] for o in walked) and any(o is later for o in walked)
    del walked
    gc.collect(2)
    assert p.figures()["collections"]["gen2"]["count"] == 1


def test_a_closed_recorder_no_longer_hears_collections(pauses):
    p, _ = pauses
    p.close()
    gc.collect(0)
    assert p.figures()["collections"]["gen0"]["count"] == 0
