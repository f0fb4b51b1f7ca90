"""Torch's CPU threads in a process where one thread runs the model (the serve worker).

torch's Linux wheels run operators on OpenMP (libgomp). libgomp keeps a team of threads
for every thread that opens a parallel region, and once the process holds more team
threads than CPUs an idle one spins 100 times instead of ~300,000 before it sleeps
(libgomp's `gomp_throttled_spin_count_var`): each of a request's ~3,000 small operators
then pays a wake-up. The serve worker loads the model on its main thread and runs it on
the batcher's model thread, so by default it holds two teams; `bench/model_thread.py`
times the same call both ways (on 2 cores: 1.31x the main thread's time, against 0.86x
with every other thread at one torch thread).

`reserve_cores_for_model_thread` (the worker's `HIRESTREAM_SERVING_MODEL_OWNS_CORES`)
gives every thread one torch thread (OMP_NUM_THREADS=1, which libgomp reads once, when
torch loads) and the model thread every core (`enter_model_thread`, its executor's
initializer). Its one team's idle thread then spins between operators, on a core that a
broker or consumer on the same machine may need. On 2 cores shared with the broker, in
twelve alternated runs, it kept every request in time at twice the sustainable rate (six
runs of six, against one of six without it) but did not lower Kafka's p99 at that rate
(docs/serving-measurements.md); it is off by default, by the rule fixed before those
runs. faiss's own
OpenMP reads OMP_NUM_THREADS too: with the setting on, the index searches on one thread.
This module imports no torch itself.
"""
from __future__ import annotations

import logging
import os
import sys

from models.cpu import available_cpus

log = logging.getLogger(__name__)

_model_threads: int | None = None  # set by `reserve_cores_for_model_thread`
_on_model_thread: int | None = None  # torch's count as the model thread read it at its start


def reserve_cores_for_model_thread() -> None:
    """Every thread runs torch on one thread, except the model thread, which gets the
    user's OMP_NUM_THREADS (else every available CPU). Call before torch is imported;
    after, it changes nothing and says so."""
    global _model_threads
    if "torch" in sys.modules:
        log.warning("torch was imported before the model thread could own the cores: left as it is")
        return
    asked = os.environ.get("OMP_NUM_THREADS", "")
    _model_threads = int(asked) if asked.isdigit() and int(asked) > 0 else available_cpus()
    os.environ["OMP_NUM_THREADS"] = "1"


def enter_model_thread() -> None:
    """The model thread's start: take the reserved cores (nothing if none were)."""
    global _on_model_thread
    if _model_threads is None and "torch" not in sys.modules:
        return  # a model-free scorer (BM25): nothing to set, and no torch to load for it
    import torch

    if _model_threads is not None:
        torch.set_num_threads(_model_threads)
    _on_model_thread = torch.get_num_threads()


def thread_counts() -> dict[str, int | None]:
    """torch's thread count on the model thread (as it started; None before) and on the
    calling thread (None where torch is not loaded)."""
    here = None
    if "torch" in sys.modules:
        import torch

        here = torch.get_num_threads()
    return {"model_thread": _on_model_thread, "this_thread": here}
