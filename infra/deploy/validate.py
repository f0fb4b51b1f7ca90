"""Validate the deployment files against the schemas their consumers use.

    .venv-deploy-check/bin/python infra/deploy/validate.py            # everything under infra/deploy
    .venv-deploy-check/bin/python infra/deploy/validate.py k8s FILE... # or named files
    .venv-deploy-check/bin/python infra/deploy/validate.py compose FILE...

Runs in `.venv-deploy-check` (infra/setup.sh builds it from infra/deploy/check-constraints.txt),
offline, from schemas that ship inside two PyPI wheels:

- Kubernetes manifests: every document against Kubernetes' own OpenAPI-derived JSON schemas
  (kubernetes-validate), strict (an unknown field is an error: a misspelt `readinessProbe` is
  otherwise dropped silently by the API server), at the oldest version the manifests rely on
  (1.28: the `apps.kubernetes.io/pod-index` label the Kafka StatefulSet reads) and the newest
  the wheel knows. A kind with no schema fails here; the package's own CLI only warns.
- Compose: the Compose specification's JSON schema, as check-jsonschema vendors it.

Exit status 1 with one line per error (file, document, path, message); 0 when all pass.
"""
from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent
OLDEST_KUBERNETES = "1.28"
# Not a Kubernetes API object: kubectl's kustomize reads it (tests/test_deploy.py checks it).
NOT_MANIFESTS = {"kustomization.yaml"}


def kubernetes_versions() -> list[str]:
    return [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]


def k8s_errors(path: Path) -> list[str]:
    errors = []
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if not docs:
        return [f"{path}: no Kubernetes object in the file"]
    for i, doc in enumerate(docs):
        name = f"{path}#{i} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in kubernetes_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = ".".join(map(str, err.absolute_path)) or "(top)"
                errors.append(f"{name}: Kubernetes {version}: {where}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                errors.append(f"{name}: {err.message}")
            except (KeyError, TypeError) as err:  # no apiVersion or kind: not an object at all
                errors.append(f"{name}: not a Kubernetes object ({err!r})")
    return errors


def compose_schema() -> dict:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def compose_errors(path: Path) -> list[str]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        return [f"{path}: not YAML: {err}"]
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        # "not valid under any of the given schemas" says little: name the deepest miss too
        # (for depends_on: the condition that is not one of the allowed words).
        closest = max(err.context, key=lambda e: len(e.absolute_path)) if err.context else None
        why = f"{err.message} (closest: {'.'.join(map(str, closest.absolute_path))}: {closest.message})" \
            if closest is not None else err.message
        out.append(f"{path}: {'.'.join(map(str, err.absolute_path)) or '(top)'}: {why}")
    return out


def default_targets() -> dict[str, list[Path]]:
    manifests = sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name not in NOT_MANIFESTS)
    return {"k8s": manifests, "compose": [DEPLOY / "compose.yaml"]}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("k8s", "compose") and len(argv) > 1:
        targets = {argv[0]: [Path(a) for a in argv[1:]]}
    elif not argv:
        targets = default_targets()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    check = {"k8s": k8s_errors, "compose": compose_errors}
    errors, checked = [], 0
    for kind, paths in targets.items():
        for path in paths:
            errors += check[kind](path)
            checked += 1
    for line in errors:
        print(line)
    against = f", Kubernetes {' and '.join(kubernetes_versions())}" if "k8s" in targets else ""
    print(f"{checked} files ({', '.join(targets)}){against}: {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
