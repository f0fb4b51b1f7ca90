"""The choices behind the index's CPU search, each measured against its alternative in one run.

    .venv/bin/python bench/scan_choices.py                 # 1M jobs, d=128
    .venv/bin/python bench/scan_choices.py --jobs 100000

1. exact search: the fused scan (index/scan.py) vs the score matrix + topk, against faiss flat;
2. head-term columns in the fused scan: none (the default) vs 32, as hybrid/dense ratios;
3. the approximate index's codes: IVF with 4-bit fast-scan codes (the default) vs 8-bit
   codes vs full vectors, at a few nprobe / proposal counts: faiss search plus exact
   rescoring of the proposals (as index/ann.py does), and recall@100 after it;
4. a write's cost: one upsert into a 15,000-job delta, for each scan (what each warms).
Timings are the best of --repeats, taken in turns. Results: a table, JSON in bench/out/.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.terminal import console as piped_console  # noqa: E402
import faiss  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.retrieval import make_queries, recall, timed, train_links  # noqa: E402
from bench.synthetic_catalog import make_catalog  # noqa: E402
from index import JobIndex  # noqa: E402
from index.ann import proposal_scores  # noqa: E402
from models.cpu import cpu_name  # noqa: E402

console = piped_console()


def best_of(fns: dict, repeats: int) -> dict[str, float]:
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn)[0])
    return best


def exact_scans(cat, full, dense, args) -> dict:
    built = {}
    for name, kw in (("fused", {}), ("fused, 32 head columns", {"head_terms": 32}), ("matrix", {"exact_scan": "matrix"})):
        index = JobIndex.create("hybrid,exact", dim=args.dim, backend="numpy", delta_limit=None, **kw)
        index.upsert(cat.jobs, embeddings=cat.embeddings)
        index.compact()
        index.search(full[:2], args.k)  # compile / warm
        built[name] = index
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(cat.embeddings)
    q_emb = np.stack([q.embedding for q in dense])
    fns = {"faiss flat": lambda: flat.search(q_emb, args.k)}
    for name, index in built.items():
        fns[f"{name}: dense"] = lambda index=index: index.search(dense, args.k)
        fns[f"{name}: hybrid"] = lambda index=index: index.search(full, args.k)
    return best_of(fns, args.repeats)


IVF_TRIALS = (  # (codes, faiss factory suffix, nprobe, proposals per query as a multiple of k)
    ("4-bit fast scan (default)", "PQ{d}x4fs", 64, 2), ("4-bit fast scan (default)", "PQ{d}x4fs", 64, 4),
    ("4-bit fast scan (default)", "PQ{d}x4fs", 96, 4), ("8-bit (SQ8)", "SQ8", 64, 2), ("8-bit (SQ8)", "SQ8", 96, 2),
    ("full vectors (IVFFlat)", "Flat", 64, 2),
)


def ivf_codes(cat, dense, args) -> list[dict]:
    x, q = cat.embeddings, np.stack([m.embedding for m in dense]).astype(np.float32)
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(x)
    _, truth = flat.search(q, args.k)
    nlist = max(16, int(4 * math.sqrt(len(x))))  # as index/ann.py builds it
    train = x[np.random.default_rng(0).choice(len(x), size=min(len(x), 40 * nlist), replace=False)]
    out, built = [], {}
    for codes, suffix, nprobe, per_k in IVF_TRIALS:
        if codes not in built:
            built.clear()  # one index in memory at a time
            built[codes] = faiss.index_factory(args.dim, f"IVF{nlist},{suffix.format(d=args.dim)}",
                                               faiss.METRIC_INNER_PRODUCT)
            built[codes].train(train)
            built[codes].add(x)
        index, params = built[codes], faiss.SearchParametersIVF(nprobe=nprobe)

        def search_and_rescore():
            _, proposals = index.search(q, per_k * args.k, params=params)
            order = np.argpartition(-proposal_scores(x, q, proposals), args.k - 1, axis=1)[:, : args.k]
            return np.take_along_axis(proposals, order, axis=1)

        seconds = min(timed(search_and_rescore)[0] for _ in range(args.repeats))
        out.append({"codes": codes, "nprobe": nprobe, "proposals": per_k * args.k, "seconds": seconds,
                    "recall": recall(search_and_rescore(), truth)})
    return out


def delta_writes(cat, args) -> dict:
    out = {}
    for scan in ("fused", "matrix"):
        index = JobIndex.create("hybrid,exact", dim=args.dim, backend="numpy", delta_limit=None, exact_scan=scan)
        index.upsert(cat.jobs[:15000], embeddings=cat.embeddings[:15000])
        job, emb = cat.jobs[15000], cat.embeddings[15000:15001]
        out[scan] = float(np.median([timed(lambda: index.upsert([job], embeddings=emb))[0] for _ in range(20)]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="bench/out/scan_choices.json")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}")
    command = ".venv/bin/python " + " ".join(sys.argv)
    cat = make_catalog(args.jobs, args.dim, seed=0)
    full, dense = make_queries(cat, args.queries, train_links(cat, 20000, 0), 1)
    console.print(f"{args.jobs:,} jobs, d={args.dim}, {args.queries:,} queries, k={args.k}")
    t0 = time.perf_counter()
    res = {"exact": exact_scans(cat, full, dense, args), "ivf": ivf_codes(cat, dense, args),
           "write_ms": {s: v * 1000 for s, v in delta_writes(cat, args).items()}}

    ex, faiss_s = res["exact"], res["exact"]["faiss flat"]
    t = Table(title="1-2. exact search, batch seconds (ratios: to faiss flat; hybrid to the same scan's dense)")
    for c in ("scan", "dense s", "dense / faiss", "hybrid s", "hybrid / dense"):
        t.add_column(c, justify="right")
    for name in ("fused", "fused, 32 head columns", "matrix"):
        d, h = ex[f"{name}: dense"], ex[f"{name}: hybrid"]
        t.add_row(name, f"{d:.3f}", f"{d / faiss_s:.2f}", f"{h:.3f}", f"{h / d:.2f}")
    t.add_row("faiss IndexFlatIP", f"{faiss_s:.3f}", "1.00", "", "")
    console.print(t)
    t = Table(title=f"3. approximate index codes: faiss proposals, rescored exactly ({args.queries:,} queries)")
    for c in ("codes", "nprobe", "proposals", "search + rescore s", "recall@100"):
        t.add_column(c, justify="right")
    for r in res["ivf"]:
        t.add_row(r["codes"], str(r["nprobe"]), str(r["proposals"]), f"{r['seconds']:.3f}", f"{r['recall']:.3f}")
    console.print(t)
    t = Table(title="4. one upsert into a 15,000-job delta (median of 20), ms")
    for c in ("scan", "ms"):
        t.add_column(c, justify="right")
    for scan, ms in res["write_ms"].items():
        t.add_row(scan, f"{ms:.1f}")
    console.print(t)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "seconds": time.perf_counter() - t0, **res}, indent=2))
    console.print(f"rerun: [bold]{command}[/]\nwrote {out}")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
