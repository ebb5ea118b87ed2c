# One command each: `make serve` runs the service on the embedded default (SQLite, no Kafka);
# `make test` installs everything and runs the linters, the type checker and every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install serve test lint services bench clean lock

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

bench: install services
	$(BIN)/python bench/store.py
	$(BIN)/python bench/eds.py
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
