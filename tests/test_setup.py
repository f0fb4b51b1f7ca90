"""infra/setup.sh asks the machine only for what its purpose uses.

Each case runs the real script in a copy of the files it reads, on a PATH that holds
only the tools the case allows (no java, mvn, kcat or sudo unless given), with a stub
.venv whose pip and hirestream record how they were called: nothing is installed."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("bash", "cat", "sha1sum", "cut", "rm", "touch", "dirname", "grep")
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\n'


def sandbox(tmp: Path, *, uid: int = 0) -> tuple[Path, Path, Path]:
    """(repo copy, bin dir for PATH, call log)."""
    repo, bin_dir, log = tmp / "repo", tmp / "bin", tmp / "calls.log"
    (repo / "infra").mkdir(parents=True)
    shutil.copy(REPO / "infra" / "setup.sh", repo / "infra" / "setup.sh")
    for name in ("constraints.txt", "pyproject.toml", "infra/deploy/check-constraints.txt"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    # the deployment checks' venv as already built: its step is skipped, as on a second run
    digest = hashlib.sha1((REPO / "infra/deploy/check-constraints.txt").read_bytes()).hexdigest()[:12]
    (repo / ".venv-deploy-check").mkdir()
    (repo / ".venv-deploy-check" / f".installed-{digest}").touch()
    (repo / ".venv" / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for name in ("python", "pip", "hirestream"):
        stub(repo / ".venv" / "bin" / name, RECORDER.format(log=log))
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stub(bin_dir / "id", f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "python3.11").symlink_to(sys.executable)
    log.touch()
    return repo, bin_dir, log


def stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def setup(repo: Path, bin_dir: Path, purpose: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([str(bin_dir / "bash"), str(repo / "infra" / "setup.sh"), purpose],
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_run_against_an_existing_cluster_needs_no_java_maven_or_kcat(tmp_path):
    repo, bin_dir, log = sandbox(tmp_path)
    done = setup(repo, bin_dir, "run", KAFKA_BOOTSTRAP="kafka.example:9092")
    assert done.returncode == 0, done.stderr
    calls = log.read_text()
    assert '-e .[all,test]' in calls, calls  # every role, as make run has always had
    assert "hirestream broker fetch" not in calls and "--extra-index-url" not in calls


def test_run_with_its_own_broker_asks_for_java_and_maven_only(tmp_path):
    repo, bin_dir, log = sandbox(tmp_path)
    done = setup(repo, bin_dir, "run")
    assert done.returncode == 1
    assert "Java 17 or newer" in done.stderr and "Maven 3.8+" in done.stderr, done.stderr
    assert "kcat" not in done.stderr and "Python" not in done.stderr
    assert log.read_text() == ""  # refused before installing anything


def test_tests_without_kcat_ask_for_root_to_install_it_and_nothing_else(tmp_path):
    repo, bin_dir, _ = sandbox(tmp_path, uid=1000)
    done = setup(repo, bin_dir, "test", KAFKA_BOOTSTRAP="kafka.example:9092")
    assert done.returncode == 1
    assert "root or sudo, to install Debian's kcat" in done.stderr and "Java" not in done.stderr, done.stderr
    assert "openssl (on PATH), for the secured-broker test" in done.stderr
    stub(bin_dir / "kcat", "#!/bin/sh\n")
    stub(bin_dir / "openssl", "#!/bin/sh\n")
    assert setup(repo, bin_dir, "test", KAFKA_BOOTSTRAP="kafka.example:9092").returncode == 0


def test_unit_tests_need_the_venv_only(tmp_path):
    repo, bin_dir, log = sandbox(tmp_path, uid=1000)
    done = setup(repo, bin_dir, "unit")
    assert done.returncode == 0, done.stderr
    assert "broker fetch" not in log.read_text()


def test_an_extra_index_url_reaches_pip(tmp_path):
    repo, bin_dir, log = sandbox(tmp_path)
    done = setup(repo, bin_dir, "unit", HIRESTREAM_PIP_EXTRA_INDEX_URL="https://wheels.example/cpu")
    assert done.returncode == 0, done.stderr
    installs = [line for line in log.read_text().splitlines() if ".[all,test]" in line]
    assert installs and "--extra-index-url https://wheels.example/cpu" in installs[0], installs


@pytest.mark.parametrize("version, ok", [((3, 10), False), ((3, 11), True), ((3, 12), True), ((3, 13), False)])
def test_python_311_and_312_are_accepted(tmp_path, version, ok):
    """An interpreter that reports `version`: set-up's own check runs in it (`python -c CODE`)."""
    repo, bin_dir, _ = sandbox(tmp_path)
    pretend = f"import sys; sys.version_info = {version + (0,)}; exec(sys.argv[1])"
    stub(bin_dir / "python-x", f'#!/bin/sh\nexec {sys.executable} -c "{pretend}" "$2"\n')
    done = setup(repo, bin_dir, "unit", PYTHON="python-x")
    assert (done.returncode == 0) is ok, done.stderr
    assert ok or "Python 3.11 or 3.12 (tried: python-x)" in done.stderr
