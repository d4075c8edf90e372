# The project's verbs. `make run` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CLIENT_PY := $(wildcard clients/python/pyproject.toml)
NODE_CLIENT := $(wildcard clients/node/package.json)

.PHONY: run test proto lint bench clean venv node postgres browser

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

# PostgreSQL's server binaries (initdb, pg_ctl) for the tests' throwaway cluster: installed with
# apt when no version is found (CI runs as root); the tests fail, never skip, without them.
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb))
postgres:
ifeq ($(PG_INITDB),)
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
endif

# Chromium for the console's browser tests (Playwright drives the system browser through
# executable_path; it downloads none): Debian's package, installed with apt when missing.
CHROMIUM := $(firstword $(wildcard /usr/bin/chromium) $(shell command -v chromium))
browser:
ifeq ($(CHROMIUM),)
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
endif

node:
ifneq ($(NODE_CLIENT),)
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
endif

# lint (CI runs only `make test`), pytest, the integration tests again with their brokers on
# PostgreSQL (the tests start a throwaway cluster: tests/pg_support.py), then the Node.js client's
# tests (node's own runner; they start their own broker).
# Each run on TEST_WORKERS workers (pytest-xdist; node: test files at once): the tests mostly wait
# on their brokers, so more workers than cores pays. Each worker has its own brokers (port 0) and
# PostgreSQL cluster; tests that must not run side by side share an xdist_group (--dist loadgroup).
# TEST_WORKERS=0: one process, as before.
TEST_WORKERS ?= 3
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)
test: $(STAMP) node lint postgres browser
	$(PY) -m pytest $(XDIST)
	$(PY) -m pytest -q $(XDIST) tests/integration --backend postgres
ifneq ($(NODE_CLIENT),)
	cd clients/node && A2A_BROKER_HTTP_ADDRESS=off node --test --test-concurrency=$(or $(filter-out 0,$(TEST_WORKERS)),1)
endif

# ruff (style and likely bugs), then mypy over broker/ and the Python client ([tool.mypy] files).
lint: $(STAMP)
	$(VENV)/bin/ruff check broker tests bench scripts clients/python examples
	$(VENV)/bin/ruff format --check broker tests bench scripts clients/python examples
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
