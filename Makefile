# Two commands matter: `make run` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.6.2
GEN_STAMP := services/common/_generated/.stamp
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install lock protos docs run test test-fast lint bench soak clean

install: $(STAMP) $(GEN_STAMP)
	@# the project's own bytecode, once: with PYTHONDONTWRITEBYTECODE set (as on these
	@# machines) every command would compile its sources again (about 0.35 s a start)
	@$(PY) -m compileall -q -j 0 services bench scripts > /dev/null

# Exactly what requirements.lock says (versions and hashes), then the project itself.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

lock:  ## refresh requirements.lock from pyproject.toml's ranges (newest allowed versions)
	test -x $(LOCK_VENV)/bin/pip-compile || \
	  ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet '$(PIP_TOOLS)')
	$(LOCK_VENV)/bin/pip-compile --quiet --upgrade --generate-hashes --extra dev \
	  --all-build-deps --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml

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

BENCH_ARGS ?=
bench: install  ## docs/benchmarks.md (the rules service, then the register and booking); BENCH_ARGS=--quick for a smoke test
	$(PY) -m bench.run $(BENCH_ARGS) --write docs/benchmarks.md
	$(PY) -m bench.writes $(BENCH_ARGS) --write docs/benchmarks.md

DURATION ?= 10m
soak: install  ## both services on SQLite, then PostgreSQL, under load (not part of make test)
	$(PY) -m bench.soak --duration $(DURATION) --write docs/reliability.md

clean:
	rm -rf $(VENV) $(LOCK_VENV) services/common/_generated var .pytest_cache .mypy_cache .ruff_cache
