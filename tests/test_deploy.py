"""The deployment files validate against the schemas their consumers use, and the check
fails on a broken one.

infra/deploy/validate.py runs in `.venv-deploy-check` (infra/setup.sh builds it; `make test`
runs set-up first): Kubernetes' own JSON schemas from kubernetes-validate, strict, at 1.28
and the newest it ships; the Compose specification's schema from check-jsonschema.
"""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "infra" / "deploy"
TOOLS_PYTHON = REPO / ".venv-deploy-check" / "bin" / "python"


def validate(*args: str | Path) -> subprocess.CompletedProcess:
    if not TOOLS_PYTHON.exists():  # not a skip: set-up always builds it, so its absence is a fault
        pytest.fail(f"{TOOLS_PYTHON.parent.parent.name} is absent: run `bash infra/setup.sh test` (its step 4)")
    return subprocess.run([str(TOOLS_PYTHON), str(DEPLOY / "validate.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_every_manifest_and_the_compose_file_validate():
    done = validate()
    assert done.returncode == 0, done.stdout + done.stderr
    manifests = [p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(manifests) >= 7 and f"{len(manifests) + 1} files" in done.stdout  # every one, + compose
    assert done.stdout.strip().endswith(": 0 errors")


def _worker_statefulset() -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "k8s" / "worker.yaml").read_text()))


def _break_statefulset(docs: list[dict], how: str) -> list[dict]:
    docs = copy.deepcopy(docs)
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    if how == "misspelt field":  # the API server would drop it silently: no readiness check at all
        container["readinessProbes"] = container.pop("readinessProbe")
    elif how == "wrong type":
        sts["spec"]["replicas"] = "three"
    elif how == "missing required field":
        del container["name"]
    elif how == "unknown kind":
        sts["kind"] = "StatefulSett"
    return docs


@pytest.mark.parametrize("how, says", [
    ("misspelt field", "'readinessProbes' was unexpected"),
    ("wrong type", "'three' is not of type 'integer'"),
    ("missing required field", "'name' is a required property"),
    ("unknown kind", "Couldn't find schema for kind StatefulSett"),
])
def test_a_broken_manifest_fails_the_check(tmp_path, how, says):
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump_all(_break_statefulset(_worker_statefulset(), how)))
    done = validate("k8s", path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stdout, done.stdout
    # The untouched copy passes: the failure is the break, not the round trip through YAML.
    path.write_text(yaml.safe_dump_all(_worker_statefulset()))
    assert validate("k8s", path).returncode == 0


@pytest.mark.parametrize("how, says", [
    ("misspelt key", "'enviroment' was unexpected"),
    ("bad depends_on condition", "condition: 'service_happy' is not one of"),
])
def test_a_broken_compose_file_fails_the_check(tmp_path, how, says):
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    if how == "misspelt key":
        compose["services"]["scoring"]["enviroment"] = compose["services"]["scoring"].pop("environment")
    else:
        compose["services"]["topics"]["depends_on"]["kafka-1"]["condition"] = "service_happy"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(compose))
    done = validate("compose", path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stdout, done.stdout
