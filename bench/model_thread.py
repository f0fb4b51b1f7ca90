"""Where a rank call loses time in the serve worker: torch's OpenMP teams on a small CPU.

    python bench/model_thread.py             # ~4 min on 2 cores
    python bench/model_thread.py --checkpoint /abs/artifacts/ranker-pruned --passes 2

The worker loads the model on its main thread and runs it on the batcher's model
thread (`serving/online/scoring.py`). torch's OpenMP (libgomp) keeps a team of threads
for each thread that runs it; once the process holds more team threads than CPUs, an
idle team thread sleeps after 100 spins instead of ~300,000, and every small operator
pays a wake-up. This bench times the same rank call in four arrangements.

Protocol (fixed before the first run, 2026-12-06):
- Model: `--checkpoint`, by default the CPU serving tier of `bench/e2e.py` (a jobs-alone
  ranker: the jobs' states are computed before the timed requests, as the worker does).
- Requests: `bench/scoring.py`'s `requests_for`: 12 members of one simulated marketplace
  (300 members, seed 3), k = 50 candidates, the prompt serving builds, task "apply"
  (`Ranker.score_many`, the batcher's call for one member).
- Each arrangement runs in its own fresh process (libgomp's teams live as long as it):
    main               load and score on the main thread (a script's layout)
    model thread       load on the main thread, score on a second thread (the worker's)
    model thread, others at one
                       the same, through the worker's own mechanism for
                       HIRESTREAM_SERVING_MODEL_OWNS_CORES (`models.torch_threads`:
                       OMP_NUM_THREADS=1 before torch loads, the scoring thread's
                       initializer gives it every CPU)
    one thread         OMP_NUM_THREADS=1 for every thread, the scoring thread too
- Figure: the median ms of a request over `--passes` passes of the 12 (the first request
  a warm-up, not counted), and its ratio to `main`'s. Everything else on the machine
  should be idle: the worker's own figure, with a broker and a client beside it, is
  `bench/e2e.py`'s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from models.cpu import cpu_name  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "artifacts" / "ranker-jobs-alone-prune-oneshot-bf16"
ARRANGEMENTS = {  # name -> (OMP_NUM_THREADS for the process or None, score on a second thread)
    "main": (None, False),
    "model thread": (None, True),
    "model thread, others at one": (None, True),  # models.torch_threads sets it
    "one thread": ("1", True),
}
OWNS_CORES = "model thread, others at one"


def one_arrangement(name: str, checkpoint: str, passes: int) -> dict:
    """In this (fresh) process: load on the main thread, score where `name` says."""
    from models.torch_threads import enter_model_thread, reserve_cores_for_model_thread

    if name == OWNS_CORES:
        reserve_cores_for_model_thread()  # before torch loads, as `hirestream serve` does
    import torch
    from scoring import load_ranker, marketplace, requests_for

    _, second = ARRANGEMENTS[name]
    ranker, _ = load_ranker(checkpoint)
    requests = requests_for(marketplace(300, 3), ranker, "today", 50, 12)

    def on_scoring_thread():
        if ranker.job_states is not None:
            jobs = list({id(j): j for _, js in requests for j in js}.values())
            ranker.job_states.warm(ranker.encode_jobs(jobs))
        ms = []
        for prefix, jobs in requests * passes:
            t = time.perf_counter()
            ranker.score_many([(prefix, jobs)], ["apply"])
            ms.append(1000 * (time.perf_counter() - t))
        return {"median_ms": statistics.median(ms[1:]), "requests": len(ms) - 1,
                "torch_threads": torch.get_num_threads()}

    if not second:
        return on_scoring_thread()
    with ThreadPoolExecutor(1, initializer=enter_model_thread if name == OWNS_CORES else None) as pool:
        return pool.submit(on_scoring_thread).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--passes", type=int, default=3, help="passes over the 12 members' requests")
    ap.add_argument("--arrangement", choices=list(ARRANGEMENTS), help=argparse.SUPPRESS)  # the child's
    args = ap.parse_args()
    if args.arrangement:
        print(json.dumps(one_arrangement(args.arrangement, args.checkpoint, args.passes)))
        return
    if not Path(args.checkpoint, "config.json").exists():
        raise SystemExit(f"no checkpoint at {args.checkpoint}: bench/e2e.py's docstring has the commands "
                         "that make the serving tier, or pass --checkpoint")
    print(f"CPU: {cpu_name()}; checkpoint {args.checkpoint}", flush=True)
    rows = {}
    for name, (omp, _) in ARRANGEMENTS.items():
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        if omp:
            env["OMP_NUM_THREADS"] = omp
        out = subprocess.run([sys.executable, __file__, "--arrangement", name, "--checkpoint", args.checkpoint,
                              "--passes", str(args.passes)], env=env, capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {name}: {rows[name]['median_ms']:.0f} ms", flush=True)
    base = rows["main"]["median_ms"]
    print(f"\n{'arrangement':<30} {'torch threads':>13} {'median ms':>10} {'x main':>7}")
    for name, r in rows.items():
        print(f"{name:<30} {r['torch_threads']:>13} {r['median_ms']:>10.0f} {r['median_ms'] / base:>7.2f}")
    print(f"({rows['main']['requests']} requests each, k = 50, every arrangement a fresh process)")
    out_path = ROOT / "bench" / "out" / "model_thread.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"cpu": cpu_name(), "checkpoint": args.checkpoint, "rows": rows}, indent=2))
    print(f"JSON: {out_path}\nrerun: python bench/model_thread.py --checkpoint {args.checkpoint} --passes {args.passes}")


if __name__ == "__main__":
    main()
