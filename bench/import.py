"""Import benchmark: rows/s of `hirestream import` (read, map, validate, sort, dedupe,
write) on a generated job-board export, against reading the same files with the plain
csv / json readers (the reference, measured in the same run), and the import's peak
memory at two export sizes (flat in rows: only a sort chunk is held).

The export has the fixture's shape (tests/data/jobboard/): work history (10% of rows),
postings with multi-line descriptions (5%), views with start and end times (80%, a
tenth open-ended), applies as JSON Lines (5%), with the fixture's gaps ("NA" titles,
missing cities, duplicate rows). Each import runs in a fresh process so its peak RSS
is its own.

    .venv/bin/python bench/import.py --rows 1000000
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.cpu import cpu_name  # noqa: E402

MAPPING = Path(__file__).resolve().parent.parent / "tests" / "data" / "jobboard" / "mapping.toml"
T0 = 1_767_600_000  # 2026-01-05


def _time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def generate(folder: Path, rows: int, seed: int = 0) -> dict[str, int]:
    """The four export files with `rows` rows in all; returns rows per file."""
    rng = random.Random(seed)
    n_exp, n_jobs, n_apply = rows // 10, rows // 20, rows // 20
    n_views = rows - n_exp - n_jobs - n_apply
    members, cities = max(1, n_exp // 3), ["Leeds", "Manchester", "Bristol", "", "London"]
    titles = ["Staff Nurse", "Software Developer", "Data Analyst", "NA", "Warehouse Operative", "Teacher"]
    with open(folder / "experience.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Applicant.ID", "Position.Name", "Employer.Name", "City", "State.Name", "Start.Date", "End.Date"])
        for i in range(n_exp):
            row = [10000 + i % members, rng.choice(titles), f"Employer {rng.randrange(500)}", rng.choice(cities),
                   "", time.strftime("%Y-%m-%d", time.gmtime(T0 - rng.randrange(10**8))), ""]
            w.writerow(row)
            if rng.random() < 0.01:
                w.writerow(row)  # a duplicate row
    with open(folder / "jobs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Job.ID", "Title", "Position", "Company", "City", "State.Name", "Industry", "Posted.At",
                    "Description"])
        for i in range(n_jobs):
            w.writerow([f"J-{i}", rng.choice(titles), "Role", f"Company {i % 997}", rng.choice(cities), "", "x",
                        _time(T0 - rng.randrange(10**6)), "First line of the posting.\nSecond line; hybrid."])
    with open(folder / "views.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Applicant.ID", "Job.ID", "View.Start", "View.End"])
        for _ in range(n_views):
            start = T0 + rng.randrange(30 * 86400)
            end = "" if rng.random() < 0.1 else _time(start + rng.randrange(1, 600))
            w.writerow([10000 + rng.randrange(members), f"J-{rng.randrange(max(1, n_jobs))}", _time(start), end])
    with open(folder / "applies.jsonl", "w") as f:
        for _ in range(n_apply):
            f.write(json.dumps({"applicant": 10000 + rng.randrange(members), "job": f"J-{rng.randrange(max(1, n_jobs))}",
                                "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime(T0 + rng.randrange(30 * 86400)))}) + "\n")
    (folder / "mapping.toml").write_text(MAPPING.read_text())
    return {"experience.csv": n_exp, "jobs.csv": n_jobs, "views.csv": n_views, "applies.jsonl": n_apply}


def plain_read(folder: Path) -> tuple[int, float]:
    """The reference: every row read with the plain readers, nothing else."""
    t0 = time.perf_counter()
    n = 0
    for name in ("experience.csv", "jobs.csv", "views.csv"):
        with open(folder / name, newline="") as f:
            n += sum(1 for _ in csv.DictReader(f))
    with open(folder / "applies.jsonl") as f:
        n += sum(1 for line in f if json.loads(line))
    return n, time.perf_counter() - t0


def child(folder: Path, chunk: int) -> None:
    """One import in this process: prints seconds, rows, events, rejections, peak RSS."""
    from infra.importing import import_exports, load_mapping

    t0 = time.perf_counter()
    report = import_exports(load_mapping(folder / "mapping.toml"), folder / "out.jsonl", chunk=chunk,
                            rejected_path=folder / "rejected.tsv")
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": sum(report.rows.values()), "events": report.events,
                      "rejected": report.n_rejected,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_import(folder: Path, chunk: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--chunk", str(chunk)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the export (all files)")
    ap.add_argument("--chunk", type=int, default=100_000, help="events sorted in memory at a time")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, args.chunk)

    print(f"CPU: {cpu_name()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.rows // 4, args.rows):  # two sizes, both over the chunk: memory must not follow rows
            folder = Path(tmp) / f"rows-{rows}"
            folder.mkdir()
            generate(folder, rows)
            n_plain, s_plain = plain_read(folder)
            imp = run_import(folder, args.chunk)
            results.append((rows, n_plain, s_plain, imp))
    print(f"{'rows':>10} {'plain rows/s':>13} {'import rows/s':>14} {'ratio':>7} {'events':>10} {'rejected':>9} "
          f"{'peak RSS MB':>12}")
    for rows, n_plain, s_plain, imp in results:
        plain_rate, import_rate = n_plain / s_plain, imp["rows"] / imp["seconds"]
        print(f"{imp['rows']:>10,} {plain_rate:>13,.0f} {import_rate:>14,.0f} {import_rate / plain_rate:>7.3f} "
              f"{imp['events']:>10,} {imp['rejected']:>9,} {imp['peak_rss_mb']:>12,.0f}")
    (small, *_, s_imp), (big, *_, b_imp) = results
    print(f"peak memory at {big:,} rows is {b_imp['peak_rss_mb'] / s_imp['peak_rss_mb']:.2f}x that at {small:,} "
          f"({big / small:.0f}x the rows; sort chunk {args.chunk:,})")
    print("rerun: .venv/bin/python bench/import.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
