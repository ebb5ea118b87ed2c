# One command each: `make serve` runs the service on the embedded default (SQLite, no Kafka);
# `make test` installs everything and runs the linters, the type checker and every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install serve test lint services bench clean lock chaos soak fuzz

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

serve: install
	$(BIN)/epoa serve

services:
	bash scripts/services.sh
	bash scripts/nginx.sh >/dev/null

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	bash scripts/check-compose.sh docker-compose.yml
	bash scripts/lint-dockerfile.sh Dockerfile

# The image's dependencies, exact and hashed, from pyproject.toml (pip-tools in its own venv).
lock:
	$(PYTHON) -m venv .tools/lock
	.tools/lock/bin/pip install --quiet pip-tools==7.6.2
	.tools/lock/bin/pip-compile --quiet --no-header --generate-hashes --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file .tools/requirements.lock pyproject.toml
	{ sed -n '1,4p' requirements.lock; cat .tools/requirements.lock; } > .tools/requirements.new
	mv .tools/requirements.new requirements.lock

test: install services lint
	$(BIN)/pytest

# Every benchmark in bench/ (PostgreSQL from `services`; the consumer's starts its own broker).
# bench/api.py needs wrk (apt-get install wrk): without it, it is skipped with a note.
bench: install services
	$(BIN)/python bench/store.py
	$(BIN)/python bench/eds.py
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/projection_catchup.py
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/issue_cpu.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/consumer.py
	@if command -v wrk >/dev/null 2>&1; then $(BIN)/python bench/api.py; \
	else echo "bench/api.py skipped: it needs wrk (apt-get install wrk)"; fi

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# SIGKILL of serve/project/consume at random moments under load, 20 times (about 3 min);
# EPOA_CHAOS_ROUNDS sets how many, EPOA_CHAOS_SEED replays a run's choices.
chaos: install services
	EPOA_CHAOS_ROUNDS=$${EPOA_CHAOS_ROUNDS:-20} $(BIN)/pytest -p no:cacheprovider -s \
		tests/test_resilience_chaos.py

# Chaos (20 kills), a real PostgreSQL restart under load (it ends every session on the local
# server: never in `make test`), then 10 minutes of steady load with memory and latency
# sampled (scripts/soak.py; EPOA_SOAK_MINUTES sets how long). Fails on any error, or if a
# process's RSS grows by more than 32 MiB.
soak: install services
	EPOA_SOAK=1 EPOA_CHAOS_ROUNDS=$${EPOA_CHAOS_ROUNDS:-20} $(BIN)/pytest -p no:cacheprovider \
		-s tests/test_resilience_chaos.py tests_soak
	$(BIN)/python scripts/soak.py --minutes $${EPOA_SOAK_MINUTES:-10} --rss-growth-mib 32

# A longer search of the HTTP API than CI's; EPOA_FUZZ_SEED=N for other cases.
fuzz: install services
	EPOA_FUZZ_EXAMPLES=$${EPOA_FUZZ_EXAMPLES:-500} $(BIN)/pytest -q -p no:cacheprovider tests/test_api_fuzz.py
