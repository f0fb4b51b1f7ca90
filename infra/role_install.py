"""A fresh virtual environment holding one role of hirestream (the base install or extras).

Used by bench/install_roles.py (size and time per role, on Python 3.11 or 3.12) and by
tests/test_base_install.py (the base install works without torch). Installs from PyPI
pinned by constraints.txt, as infra/setup.sh does, with the same extra package index
when HIRESTREAM_PIP_EXTRA_INDEX_URL names one.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
EXTRA_INDEX_ENV = "HIRESTREAM_PIP_EXTRA_INDEX_URL"
PIP_VERSION = "24.3.1"  # infra/setup.sh's


@dataclass
class RoleVenv:
    path: Path
    extras: tuple[str, ...]
    seconds: float  # venv creation plus install

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def pip_install(self, *args: str) -> None:
        subprocess.run([str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-c", str(CONSTRAINTS), *args], check=True, env=pip_env())


def project_wheel(venv: RoleVenv, out_dir: Path) -> Path:
    """This checkout built as a wheel. Built here, uncached: pip would cache a wheel it
    builds from a folder whose name looks versioned (`wt-extras`) and install that stale
    wheel after the code changed."""
    subprocess.run([str(venv.python), "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-cache-dir", "-w", str(out_dir), str(REPO)], check=True, env=pip_env())
    return next(out_dir.glob("hirestream-*.whl"))


def pip_env() -> dict[str, str]:
    """The environment pip runs in: the set-up's extra index, if any, as pip's own variable."""
    env = dict(os.environ)
    if env.get(EXTRA_INDEX_ENV):
        env["PIP_EXTRA_INDEX_URL"] = env[EXTRA_INDEX_ENV]
    return env


def build(path: Path, extras: tuple[str, ...] = (), python: str = "python3.11") -> RoleVenv:
    """A new venv at `path` with hirestream[extras] from PyPI, pinned by constraints.txt."""
    t0 = time.monotonic()
    subprocess.run([python, "-m", "venv", str(path)], check=True)
    venv = RoleVenv(path, extras, 0.0)
    subprocess.run([str(venv.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"pip=={PIP_VERSION}"], check=True, env=pip_env())
    with tempfile.TemporaryDirectory(prefix="hirestream-wheel-") as out_dir:
        wheel = project_wheel(venv, Path(out_dir)).as_uri()
        venv.pip_install(f"hirestream[{','.join(extras)}] @ {wheel}" if extras else f"hirestream @ {wheel}")
    venv.seconds = time.monotonic() - t0
    return venv
