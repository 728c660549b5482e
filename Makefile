# Two commands matter: `make run` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := services/common/_generated/.stamp
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install protos docs run test test-fast lint bench clean

install: $(STAMP) $(GEN_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(GEN_STAMP): $(STAMP) $(PROTOS) scripts/gen_protos.py
	$(PY) scripts/gen_protos.py
	touch $(GEN_STAMP)

protos: $(STAMP)
	$(PY) scripts/gen_protos.py
	touch $(GEN_STAMP)

docs: install  ## docs/api.md and docs/openapi.json from the protos (a test checks them)
	$(PY) scripts/gen_docs.py

run: install  ## both services on SQLite with demo data; Ctrl-C stops both
	@mkdir -p var
	@$(PY) -m services.rules demo --dev & RULES_PID=$$!; \
	trap 'kill $$RULES_PID 2>/dev/null; wait $$RULES_PID 2>/dev/null' EXIT INT TERM; \
	$(PY) -m services.booking demo --dev

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check services tests bench scripts
	$(VENV)/bin/ruff format --check services tests bench scripts
	$(VENV)/bin/mypy services

bench: install
	$(PY) -m bench.run --write docs/benchmarks.md

clean:
	rm -rf $(VENV) services/common/_generated var .pytest_cache .mypy_cache .ruff_cache
