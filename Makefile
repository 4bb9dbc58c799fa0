# The make targets are the interface; CI calls the same ones (.ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
AP := $(VENV)/bin/ap
STAMP := $(VENV)/.installed-stamp
# `make up` uses ./ap.toml when there is one (or CONFIG=path), else the embedded defaults,
# and ./team.toml when there is one (or TEAM=path) for the workers.
CONFIG ?= $(wildcard ap.toml)
TEAM ?= $(wildcard team.toml)

.PHONY: up down status test chaos lint format bench bench-scale demo install browser clean

# Create the virtual environment and install the package with its dev extra whenever
# pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ap-actors needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The agent CLIs of `make agents` are found on PATH (ap agents; the default team).
up: $(STAMP)
	PATH="$(CURDIR)/$(AGENTS_DIR)/node_modules/.bin:$$PATH" $(AP) up --detach $(if $(CONFIG),--config $(CONFIG)) $(if $(TEAM),--team $(TEAM))

down: $(STAMP)
	$(AP) down

status: $(STAMP)
	$(AP) status

# The browser tests drive Debian's Chromium with Playwright (its own browser downloads
# are not used): install the package when it is missing.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium (e.g. your distribution's chromium package) at $(CHROMIUM), or set CHROMIUM=path"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium

browser: $(CHROMIUM)

# The real coding-agent CLIs (codex, claude, gemini) the agent tests run, pinned in
# agents/package-lock.json and installed into $(AGENTS_DIR)/node_modules/.bin/ whenever the
# pins change. Install scripts are skipped (node-pty would compile from source) except
# Claude Code's, which puts its native binary in place of a stub.
AGENTS_DIR ?= .agents
AGENTS_STAMP := $(AGENTS_DIR)/.installed-stamp
.PHONY: agents
$(AGENTS_STAMP): agents/package.json agents/package-lock.json
	@command -v npm >/dev/null || { echo "make agents needs Node.js >= 20 with npm"; exit 1; }
	@mkdir -p $(AGENTS_DIR)
	cp agents/package.json agents/package-lock.json $(AGENTS_DIR)/
	npm ci --prefix $(AGENTS_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error
	cd $(AGENTS_DIR)/node_modules/@anthropic-ai/claude-code && node install.cjs
	@touch $(AGENTS_STAMP)

agents: $(AGENTS_STAMP)

test: $(STAMP) $(CHROMIUM) $(AGENTS_STAMP)
	AP_CHROMIUM=$(CHROMIUM) AP_REQUIRE_AGENTS=1 $(PY) -m pytest -q

# Faults injected into a loaded mesh and checked by the history checker (scripts/chaos.py,
# about 2 min), then every input surface fuzzed with 100,000 generated cases each
# (tests/fuzz, about 65 min on 2 cores; `make test` runs both with small numbers).
# Each prints a table.
FUZZ_EXAMPLES ?= 100000
chaos: $(STAMP)
	$(PY) scripts/chaos.py
	AP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/fuzz -q -p no:randomly -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check ap_actors tests scripts
	$(VENV)/bin/ruff format --check ap_actors tests scripts
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix ap_actors tests scripts
	$(VENV)/bin/ruff format ap_actors tests scripts

bench: $(STAMP)
	$(PY) scripts/bench.py

# The scale run: 100 replaying agents at 50 lines/s and 1,000 WebSocket clients (a few
# minutes; scripts/bench_scale.py --help for smaller runs).
bench-scale: $(STAMP)
	$(PY) scripts/bench_scale.py

# A whole session on a real package downloaded from PyPI (scripts/demo.py).
demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache $(AGENTS_DIR)
