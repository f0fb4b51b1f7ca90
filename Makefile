# The two commands (README): `make run` and `make test`. Both set up first.
.PHONY: setup run test test-quick bench clean

setup:
	@bash infra/setup.sh

run: setup
	.venv/bin/hirestream run

test: setup
	.venv/bin/python -m pytest

# Unit tests only (no broker, no real model): seconds.
test-quick: setup
	.venv/bin/python -m pytest -m "not kafka and not slow"

clean:
	-.venv/bin/hirestream broker stop
	rm -rf .hirestream bench/out reports
