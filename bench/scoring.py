"""Scoring methods side by side: one model, k candidates per request, two prompt shapes.

    python bench/scoring.py                      # ~3 min on 2 idle cores
    python bench/scoring.py --requests 10 --slow-requests 2

Protocol (fixed before the first run):
- Model: `artifacts/ranker-pruned` (SmolLM2-135M's first 8 blocks, trained) when it is
  there, else `Ranker.teacher(layers=8)` (the same shapes, untrained); float32,
  `--threads` torch threads.
- Requests: members of one simulated marketplace (`--members`, `--seed`), each with
  the `--k` (100) candidates the live index retrieves for them, task "apply".
  * today: the prompt serving builds now: the worker's 30 newest interactions, the
    checkpoint's budget (384 prefix tokens).
  * 360brew: a 360Brew-like history: every interaction the member has, a 1,536-token
    prefix budget; only members whose prefix reaches 1,000 tokens are used.
- Methods (`Ranker.score_tasks(method=...)`, `models/multi_item.py`):
  single        one prompt per candidate, one at a time (the reference)
  padded        the same prompts as right-padded batches of 16 (no sharing)
  multi_item    one packed sequence per 64 candidates, the block attention mask
  prefix_cache  the prefix once, every candidate a segment over its KV cache
  prefix_cache x4  four members' requests in one call (`Ranker.score_many`, what
                the serving batcher does when requests arrive together)
- Each method scores one small warm-up request first (not timed), then `--requests`
  requests one after another (x4: `--requests` // 4 calls, at least one). Latency is
  a request's wall time (for x4, the call's: each of its four requests waits for all
  of it); candidates/s = candidates scored / wall time. p99 of n < 100 requests is
  interpolated (numpy), near the maximum.
- single and padded cost minutes per 100-candidate request at the 360brew shape, and
  their cost is linear in candidates (no prompt shares anything with another): they
  score `--slow-sample` (20) of each request's candidates, over `--slow-requests`
  requests, and their request latency is that time x k / sample (marked * in the
  table). `--slow-sample 100` times whole requests.
- Ratios: candidates per CPU-second of this process (`time.process_time`, all its
  threads: robust to other load on a shared machine; wall-clock figures beside
  them), against single's, and against the bound the shape allows:
  sharing the prefix can at best remove the prefix's tokens, so the speed-up is at
  most (prefix + segment) / segment tokens (means over the requests; a segment is the
  job's body plus its question). Agreement: the largest |p(Yes) - single's| on the
  first request. One prompt at a time also pays for small matrix products, so the
  same ratios are printed against `padded` (the same prompts in batches of 16), the
  reference that differs from the sharing methods only in what they share.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SLOW = ("single", "padded")
TODAY_HISTORY = 30  # the worker's history_max_items (streams.settings)
BREW_PREFIX_TOKENS = 1536
BREW_MIN_PREFIX = 1000


def load_ranker(path: str):
    from models.ranker import Ranker

    if Path(path, "config.json").exists():
        return Ranker.load(path, device="cpu"), path
    return Ranker.teacher(layers=8), "SmolLM2-135M-Instruct, first 8 blocks (untrained: no checkpoint at " + path + ")"


def marketplace(members: int, seed: int):
    """A simulated marketplace folded into an engine that keeps long histories."""
    from serving.engine import EngineConfig, MatchingEngine
    from streams.simulator import Marketplace, MarketplaceConfig

    cfg = MarketplaceConfig(seed=seed, n_members=members, n_companies=12, n_jobs=6 * members, days=30)
    engine = MatchingEngine(None, EngineConfig(history_max_items=400, seen_window=4096))
    engine.apply_all(Marketplace(cfg).events())
    return engine


def requests_for(engine, ranker, shape: str, k: int, n: int) -> list[tuple[str, list]]:
    """(prefix text, k candidate jobs) for the n members with the longest histories,
    under the ranker's current budget."""
    now = engine.last_event_time
    states = sorted((s for s in engine.members.values() if s.profile is not None),
                    key=lambda s: (-len(s.history), s.member_id))
    out = []
    for state in states:
        history = sorted(state.history, key=lambda it: -it.event_time)[:TODAY_HISTORY] if shape == "today" \
            else state.history
        prefix = ranker.member_prefix(state.profile, history, now)
        if shape == "360brew" and len(ranker.encode_prefix(prefix)) < BREW_MIN_PREFIX:
            continue
        candidates, _ = engine.retrieve(state, k=k)
        if len(candidates) == k:
            out.append((prefix, [c.job for c in candidates]))
        if len(out) == n:
            break
    if not out:
        raise SystemExit(f"no member gives a {shape} request with {k} candidates; try more --members")
    return out


def token_shape(ranker, requests) -> tuple[float, float]:
    """Mean prefix tokens and mean segment tokens (body + the task's question)."""
    from models.verbalizer import job_segment

    marker = len(ranker.encode_markers(["apply"])[0])
    prefix = np.mean([len(ranker.encode_prefix(p)) for p, _ in requests])
    segment = np.mean([len(ranker.encode_segment(job_segment(j))) + marker for _, jobs in requests for j in jobs])
    return float(prefix), float(segment)


def run_method(ranker, method: str, requests, members_per_call: int = 1, sample: int | None = None) -> dict:
    """Latencies per request (scaled to whole requests when `sample` candidates of each
    are timed), candidates scored, wall time, and the first request's scores."""
    if members_per_call > 1:
        calls = [requests[i:i + members_per_call] for i in range(0, len(requests), members_per_call)]
        calls = [c for c in calls if len(c) == members_per_call]
        ranker.score_many([(p, jobs[:4]) for p, jobs in calls[0]], ["apply"])  # warm-up
        lat, n_cand, wall, cpu = [], 0, 0.0, 0.0
        scores = None
        for call in calls:
            t, c = time.perf_counter(), time.process_time()
            out = ranker.score_many(call, ["apply"])
            dt = time.perf_counter() - t
            cpu += time.process_time() - c
            scores = scores if scores is not None else out[0][:, 0]
            lat += [dt] * len(call)
            n_cand += sum(len(jobs) for _, jobs in call)
            wall += dt
        return {"latencies_s": lat, "candidates": n_cand, "wall_s": wall, "cpu_s": cpu, "first_scores": scores}
    prefix0, jobs0 = requests[0]
    ranker.score_tasks(prefix0, jobs0[:4], ["apply"], method=method)  # warm-up: allocations, kernels
    lat, scores, n_cand, wall, cpu = [], None, 0, 0.0, 0.0
    for prefix, jobs in requests:
        timed = jobs[:sample] if sample else jobs
        t, c = time.perf_counter(), time.process_time()
        p = ranker.score_tasks(prefix, timed, ["apply"], method=method)[:, 0]
        dt = time.perf_counter() - t
        cpu += time.process_time() - c
        lat.append(dt * len(jobs) / len(timed))
        n_cand, wall = n_cand + len(timed), wall + dt
        scores = scores if scores is not None else p
    return {"latencies_s": lat, "candidates": n_cand, "wall_s": wall, "cpu_s": cpu, "first_scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranker", default="artifacts/ranker-pruned")
    ap.add_argument("--k", type=int, default=100, help="candidates per request")
    ap.add_argument("--requests", type=int, default=3, help="timed requests per fast method and shape")
    ap.add_argument("--slow-requests", type=int, default=1, help="timed requests for single and padded")
    ap.add_argument("--slow-sample", type=int, default=20, help="candidates of each request single and padded time")
    ap.add_argument("--shapes", default="today,360brew")
    ap.add_argument("--methods", default="single,padded,multi_item,prefix_cache,prefix_cache x4")
    ap.add_argument("--members", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    ranker, model_name = load_ranker(args.ranker)
    print(f"CPU: {cpu_name()}, {args.threads} torch threads; torch {torch.__version__}; float32; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start")
    print(f"model: {model_name}; k = {args.k} candidates per request, task 'apply'")
    engine = marketplace(args.members, args.seed)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows, report = [], {"cpu": cpu_name(), "threads": args.threads, "model": model_name, "k": args.k, "shapes": {}}
    checkpoint_budget = ranker.budget
    for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        ranker.budget = checkpoint_budget if shape == "today" else \
            replace(checkpoint_budget, max_prefix_tokens=BREW_PREFIX_TOKENS)
        n_needed = max(args.requests, args.slow_requests, 4)
        requests = requests_for(engine, ranker, shape, args.k, n_needed)
        prefix_tok, segment_tok = token_shape(ranker, requests[:max(args.requests, args.slow_requests)])
        bound = (prefix_tok + segment_tok) / segment_tok
        print(f"\n{shape}: {len(requests)} members, prefix {prefix_tok:.0f} tokens, segment {segment_tok:.0f} "
              f"tokens (body + question): bound (prefix + segment) / segment = {bound:.1f}x", flush=True)
        results = {}
        for method in methods:
            base, _, x = method.partition(" x")
            per_call = int(x) if x else 1
            n = args.slow_requests if base in SLOW else args.requests
            n_requests = max(1, n // per_call) * per_call
            sample = min(args.slow_sample, args.k) if base in SLOW and args.slow_sample < args.k else None
            r = run_method(ranker, base, requests[:n_requests], per_call, sample)
            r["sampled"] = sample
            results[method] = r
            print(f"  {method}: {r['candidates'] / r['wall_s']:.1f} candidates/s over {len(r['latencies_s'])} "
                  f"requests", flush=True)
        ref, padded = results.get("single"), results.get("padded")
        for method, r in results.items():
            lat = np.asarray(r["latencies_s"])
            cps, per_cpu = r["candidates"] / r["wall_s"], r["candidates"] / r["cpu_s"]
            speedup = per_cpu / (ref["candidates"] / ref["cpu_s"]) if ref else float("nan")
            over_padded = per_cpu / (padded["candidates"] / padded["cpu_s"]) if padded else float("nan")
            common = min(len(r["first_scores"]), len(ref["first_scores"])) if ref else 0
            diff = float(np.max(np.abs(r["first_scores"][:common] - ref["first_scores"][:common]))) \
                if common else float("nan")
            rows.append((shape, method + ("*" if r["sampled"] else ""), len(lat), f"{cps:.1f}", f"{per_cpu:.2f}",
                         f"{np.percentile(lat, 50):.2f}", f"{np.percentile(lat, 99):.2f}", f"{speedup:.1f}x",
                         f"{100 * speedup / bound:.0f}%", f"{over_padded:.1f}x", f"{100 * over_padded / bound:.0f}%",
                         f"{diff:.1e}"))
            report["shapes"].setdefault(shape, {"prefix_tokens": prefix_tok, "segment_tokens": segment_tok,
                                                "bound": bound, "methods": {}})["methods"][method] = {
                "requests": len(lat), "candidates_per_s": cps, "candidates_per_cpu_s": per_cpu,
                "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
                "x_single_per_cpu_s": speedup, "share_of_bound": speedup / bound,
                "x_padded_per_cpu_s": over_padded, "share_of_bound_vs_padded": over_padded / bound,
                "max_abs_diff_vs_single": diff, "timed_candidates_per_request": r["sampled"] or args.k}
    header = ("shape", "method", "n", "cand/s", "cand/CPU-s", "p50 s", "p99 s", "x single", "of bound",
              "x padded", "of bound", "max|dp|")
    table = [header, *rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    print()
    for row in table:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    print(f"\n(n: timed requests; *: {args.slow_sample} of each request's {args.k} candidates timed, latency scaled "
          f"to {args.k}; cand/s and latencies are wall clock, 'x single' and 'of bound' compare candidates per CPU-second "
          f"of this process (robust to other load on the machine); 'of bound': that speed-up as a share of "
          f"(prefix + segment) / segment; 'x padded' and its 'of bound' take the padded batches of the same prompts "
          f"as the reference instead (one prompt at a time also pays for small matrix products, which the bound "
          f"does not count); max|dp|: "
          f"largest p(Yes) difference from single on the first request's timed candidates; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; {time.perf_counter() - started:.0f} s)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scoring.json").write_text(json.dumps(report, indent=2))
    print(f"rerun: python bench/scoring.py --ranker {args.ranker} --k {args.k} --requests {args.requests} "
          f"--slow-requests {args.slow_requests} --slow-sample {args.slow_sample} --shapes {args.shapes} --methods '{args.methods}' "
          f"--members {args.members} --seed {args.seed} --threads {args.threads}")


if __name__ == "__main__":
    main()
