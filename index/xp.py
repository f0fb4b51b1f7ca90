"""The one switch between CuPy (CUDA device present) and NumPy.

Every index operation is written once against `Backend.xp` (the array module) and
`Backend.sparse` (its scipy.sparse twin). Nothing else in `index/` imports cupy.

`import cupy` succeeds on machines without a GPU and only the first array raises, so
the choice is made on `cupy.cuda.is_available()`, once, at construction time.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

BackendName = Literal["auto", "numpy", "cupy"]


@dataclass(frozen=True)
class Backend:
    name: str
    xp: ModuleType  # numpy or cupy
    sparse: ModuleType  # scipy.sparse or cupyx.scipy.sparse

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """Device array -> NumPy (a no-op on the NumPy backend)."""
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)

    def repeat_index(self, counts: Any) -> Any:
        """i repeated counts[i] times: for each output position, the entry it copies, so
        several arrays can be expanded by one gather each. On a device (cupy.repeat
        takes only host counts) a 1 marks where each entry's run begins and a running
        sum numbers them; int32 there, as a posting walk's positions fit in it. The one op
        whose spelling differs by backend."""
        if self.xp is np:
            return np.repeat(np.arange(len(counts)), counts)
        xp = self.xp
        ends = xp.cumsum(counts)
        total = int(ends[-1]) if ends.shape[0] else 0
        marks = xp.zeros(total, dtype=xp.int32)
        starts = ends[:-1]
        xp.add.at(marks, starts[starts < total], 1)  # runs of zero length: several marks at one place
        return xp.cumsum(marks, dtype=xp.int32)

    def synchronize(self) -> None:
        """Wait for queued device work (timing needs it; NumPy has none)."""
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()


def cupy_usable() -> tuple[bool, str]:
    """(usable, why-not). Importable is not enough: a CUDA device must answer."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        return False, f"cupy is not installed ({err})"
    try:
        if not cupy.cuda.is_available():
            return False, "cupy is installed but no CUDA device is available"
    except Exception as err:  # noqa: BLE001 — any CUDA runtime error means "not usable"
        return False, f"cupy cannot reach a CUDA device: {err!r}"
    return True, ""


def get_backend(name: BackendName | Backend = "auto") -> Backend:
    """'auto' -> CuPy when a CUDA device answers, else NumPy; 'cupy' fails loudly."""
    if isinstance(name, Backend):
        return name
    if name not in ("auto", "numpy", "cupy"):
        raise ValueError(f"unknown array backend {name!r}; expected 'auto', 'numpy' or 'cupy'")
    if name in ("auto", "cupy"):
        ok, why = cupy_usable()
        if ok:
            import cupy
            import cupyx.scipy.sparse as cusparse

            return Backend("cupy", cupy, cusparse)
        if name == "cupy":
            raise RuntimeError(f"backend 'cupy' requested but {why}")
    import scipy.sparse as sp

    return Backend("numpy", np, sp)
