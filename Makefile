# The project's verbs. `make run` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CLIENT_PY := $(wildcard clients/python/pyproject.toml)
NODE_CLIENT := $(wildcard clients/node/package.json)

.PHONY: run test proto lint bench clean venv node

$(STAMP): pyproject.toml $(CLIENT_PY)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' $(if $(CLIENT_PY),-e clients/python)
	touch $(STAMP)

venv: $(STAMP)

# Regenerate broker/pb from protos/ (the generated files are committed).
proto: $(STAMP)
	$(PY) scripts/gen_protos.py >/dev/null

run: $(STAMP)
	mkdir -p data
	$(VENV)/bin/a2a-broker serve

node:
ifneq ($(NODE_CLIENT),)
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
endif

# lint (CI runs only `make test`), pytest, then the Node.js client's tests (node's own runner;
# they start their own broker).
test: $(STAMP) node lint
	$(PY) -m pytest
ifneq ($(NODE_CLIENT),)
	cd clients/node && node --test
endif

# ruff (style and likely bugs), then mypy over broker/ and the Python client ([tool.mypy] files).
lint: $(STAMP)
	$(VENV)/bin/ruff check broker tests bench scripts clients/python examples
	$(VENV)/bin/ruff format --check broker tests bench scripts clients/python examples
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
