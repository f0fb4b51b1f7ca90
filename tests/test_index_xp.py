"""The array-module switch, and the same search on CuPy when a CUDA device exists."""
from __future__ import annotations

import random

import numpy as np
import pytest

from index import JobIndex
from index.xp import get_backend
from tests.index_reference import (
    CUPY_OK,
    CUPY_WHY,
    assert_matches_reference,
    random_catalog,
    random_query,
    reference_scores,
)


def test_numpy_backend_is_chosen_without_a_device():
    backend = get_backend("numpy")
    assert backend.xp is np and backend.name == "numpy"
    if not CUPY_OK:
        assert get_backend("auto").name == "numpy"


def test_unknown_or_unavailable_backend_fails_with_the_reason():
    with pytest.raises(ValueError, match="unknown array backend 'tpu'"):
        get_backend("tpu")  # type: ignore[arg-type]
    if not CUPY_OK:
        with pytest.raises(RuntimeError, match="backend 'cupy' requested but"):
            get_backend("cupy")


@pytest.mark.gpu
@pytest.mark.skipif(not CUPY_OK, reason=f"CuPy search needs a CUDA device: {CUPY_WHY}")
@pytest.mark.parametrize("spec", ["hybrid,exact", "dense,exact", "term,exact"])
def test_cupy_search_equals_numpy_search(spec):
    """The matrix scan on the GPU and the fused scan on the CPU return the same scores,
    and each GPU hit has the reference score (term scores tie a lot: ties may differ)."""
    jobs, emb = random_catalog(21, 2000, 32)
    on_gpu = JobIndex.create(spec, dim=32, backend="cupy")
    on_cpu = JobIndex.create(spec, dim=32, backend="numpy")
    for ix in (on_gpu, on_cpu):
        ix.upsert(jobs[:1500], embeddings=emb[:1500])
        ix.compact()
        ix.upsert(jobs[1500:], embeddings=emb[1500:])
        ix.delete([j.job_id for j in jobs[::13]])
    rng = random.Random(21)
    queries = [random_query(rng, 32, [j.job_id for j in jobs]) for _ in range(40)]
    g, c = on_gpu.search(queries, k=25), on_cpu.search(queries, k=25)
    np.testing.assert_allclose(g.scores, c.scores, atol=1e-4)
    closed = {j.job_id for j in jobs[::13]}
    live = {j.job_id: j for j in jobs if j.job_id not in closed}
    vecs = {j.job_id: emb[i] for i, j in enumerate(jobs)}
    for i, q in enumerate(queries):
        ref = reference_scores(live, vecs, q, spec.split(",")[0])
        assert_matches_reference(g.ids[i], g.scores[i], ref, 25)


def test_device_repeat_index_path_matches_numpy_repeat():
    """Backend.repeat_index's CuPy branch (marks at run starts, then a running sum), run
    on NumPy through a stand-in module that is not `numpy` itself."""
    import types

    from index.xp import Backend

    stand_in = types.SimpleNamespace(cumsum=np.cumsum, zeros=np.zeros, add=np.add, int32=np.int32)
    device = Backend("stand-in", stand_in, None)  # type: ignore[arg-type]
    for counts in ([2, 0, 3, 1, 0, 4], [0, 0, 2, 1], [3, 0, 0], [1], [0, 0], []):
        counts = np.asarray(counts, np.int64)
        want = np.repeat(np.arange(len(counts)), counts)
        assert list(device.repeat_index(counts)) == list(want), counts
        assert list(Backend("numpy", np, None).repeat_index(counts)) == list(want)  # type: ignore[arg-type]
