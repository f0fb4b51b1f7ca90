"""Install size and time of each role of hirestream, each in a fresh venv, against the one
full environment `make run` and `make test` build.

For each role (base: producers and clients; worker; serving; models; all, the one
environment of before) a new venv gets `hirestream[<extras>]` from PyPI pinned by
constraints.txt (infra/role_install.py, as set-up does); the table gives the wall time
of creating the venv and installing, and the venv's size on disk. pip's cache is left as
it is and the header says how big it was: where pip may cache the index's downloads
(torch's CUDA build is ~3 GB), a second run installs faster than a fresh machine.
With --check, each venv then gets pytest and runs that role's unit tests from this
checkout, which is how Python 3.12 is proven beside CI's 3.11:

    .venv/bin/python bench/install_roles.py                    # 3.11: base, worker, serving, models, all
    .venv/bin/python bench/install_roles.py --python /root/.pyenv/versions/3.12.1/bin/python \\
        --roles base,worker --check
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra import role_install
from models.cpu import cpu_name

ROLES = {  # role -> extras
    "base": (),
    "worker": ("worker",),
    "serving": ("serving",),
    "models": ("models",),
    "all": ("all",),
}
UNIT_TESTS = {  # role -> tests that need only what the role installs (no broker, no model)
    "base": ["tests/test_schemas.py", "tests/test_state.py", "tests/test_delivery.py"],
    "worker": ["tests/test_schemas.py", "tests/test_state.py", "tests/test_delivery.py",
               "tests/test_dead_letters.py", "tests/test_member_reads.py"],
}


def du_bytes(path: Path) -> int:
    """Disk use as `du` counts it (blocks, hard links once)."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) * 1024


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def run_unit_tests(venv: role_install.RoleVenv, tests: list[str]) -> str:
    venv.pip_install("pytest", "pytest-timeout")
    done = subprocess.run([str(venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=role_install.REPO, capture_output=True, text=True)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return f"rc {done.returncode}: {last}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default="base,worker,serving,models,all",
                        help=f"comma-separated, of {', '.join(ROLES)}")
    parser.add_argument("--python", default="python3.11", help="interpreter the venvs are made with")
    parser.add_argument("--check", action="store_true", help="run each role's unit tests in its venv")
    parser.add_argument("--reference", type=Path, default=role_install.REPO / ".venv",
                        help="the full environment to compare with (set-up's .venv)")
    args = parser.parse_args()
    roles = args.roles.split(",")
    unknown = set(roles) - set(ROLES)
    if unknown:
        parser.error(f"unknown roles {sorted(unknown)}; known: {', '.join(ROLES)}")

    cache = Path.home() / ".cache" / "pip"
    print(f"CPU: {cpu_name()}; Python {python_version(args.python)} ({args.python}); "
          f"pip cache {du_bytes(cache) / 1e9 if cache.exists() else 0:.1f} GB before; "
          f"extra index: {role_install.pip_env().get('PIP_EXTRA_INDEX_URL') or 'none (PyPI only)'}")
    print("rerun: " + " ".join([".venv/bin/python", "bench/install_roles.py", *sys.argv[1:]]), flush=True)
    rows = []
    for role in roles:
        with tempfile.TemporaryDirectory(prefix=f"hs-role-{role}-") as tmp:
            venv = role_install.build(Path(tmp) / "venv", ROLES[role], python=args.python)
            size = du_bytes(venv.path)
            tests = run_unit_tests(venv, UNIT_TESTS[role]) if args.check and role in UNIT_TESTS else ""
            rows.append((role, "[" + ",".join(ROLES[role]) + "]" if ROLES[role] else "(base)",
                         venv.seconds, size, tests))
            print(f"  {role}: {venv.seconds:.0f} s, {size / 1e9:.2f} GB {tests}", flush=True)
    full = du_bytes(args.reference.resolve()) if args.reference.exists() else None
    print()
    print(f"{'role':<8} {'extras':<10} {'install s':>9} {'size GB':>8} {'of full':>8}  unit tests")
    for role, extras, seconds, size, tests in rows:
        share = f"{size / full:.0%}" if full else "-"
        print(f"{role:<8} {extras:<10} {seconds:>9.0f} {size / 1e9:>8.2f} {share:>8}  {tests}")
    if full:
        print(f"{'full':<8} {'(.venv)':<10} {'':>9} {full / 1e9:>8.2f} {'100%':>8}  "
              f"{args.reference}: [all,test] + data packages, what `make run`/`make test` build")


if __name__ == "__main__":
    from infra.terminal import plain_when_piped

    plain_when_piped()  # piped (a log, CI): no progress bars, transformers' included
    main()
