# Enclave: `make run` starts the portal and a local agent; `make test` runs the whole suite.
# Both set everything up first (virtualenv, packages, database, demo data) and need neither
# PostgreSQL nor Redis: the embedded defaults serve. Set DATABASE_URL / REDIS_URL to use them.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
TOOLS_STAMP := tools/node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup lint format migrations-check bench clean

run: setup
	bin/system-packages bubblewrap passt
	DEBUG=$${DEBUG:-true} PY=$(PY) HOST=$(HOST) PORT=$(PORT) bin/run-local

test: setup
	bin/system-packages bubblewrap passt chromium
	DEBUG=true $(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP) $(NPM_STAMP) $(TOOLS_STAMP)

$(STAMP): requirements/base.txt requirements/agent.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build
	touch $(NPM_STAMP)

# The AI tools mapped read-only into every workspace (OpenCode, Claude Code: native binaries
# that the packages' postinstall puts in place, ~600 MB). A binary that does not answer
# --version (a placeholder left by a skipped postinstall) fails the install here. The lock
# file also lists OpenCode's other platform packages, which the registry did not serve when
# it was generated (hence no integrity; not installed on glibc Linux x64): npm ci refuses a
# lock file without them.
$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@for tool in opencode claude; do \
	  tools/bin/$$tool --version >/dev/null 2>&1 || { \
	    echo "enclave: tools/bin/$$tool does not run after npm ci (postinstall skipped?)" >&2; \
	    exit 1; }; \
	done
	touch $(TOOLS_STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -c pyproject.toml -r accounts agent audit blueprints clusters core portal publishing relay security_center workspaces

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: setup
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

bench: setup
	bin/system-packages bubblewrap passt chromium
	DEBUG=true $(PY) bench/discovery.py
	DEBUG=true $(PY) bench/terminal.py
	DEBUG=true $(PY) bench/preview.py
	DEBUG=true $(PY) bench/pages.py
	DEBUG=true $(PY) bench/events.py --browser

clean:
	rm -rf $(VENV) node_modules tools/node_modules staticfiles static/vendor
