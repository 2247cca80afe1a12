# The two commands of the README: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck bench bench-peers chaos chaos-cluster clean chromium postgresql

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# Lighter's signer is the Go library inside lighter-sdk; only that part is used (no aiohttp client), and the
	# SDK pins urllib3<2.1, which ccxt's pin contradicts, so it is installed without its dependencies (the
	# `lighter` extra names the same pin for installs without the test extra: pip install '.[lighter]').
	$(BIN)/python -m pip install --quiet --no-deps 'lighter-sdk==1.1.8'
	touch $(STAMP)

# The browser tests (tests/browser) drive the system's Chromium through Playwright, never Playwright's own
# download: Debian's package is installed by `make test` where /usr/bin/chromium is missing (as root, or with sudo
# if allowed; `make run` does not need a browser).
# Without it the browser tests skip, and fail under CI=true.
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "/usr/bin/chromium is missing: run 'apt-get install chromium' as root (browser tests skip, fail under CI=true)"; fi; }

# The PostgreSQL store's tests (tests/helpers/postgres.py) start a throwaway server from the machine's initdb and
# pg_ctl: Debian's package is installed where initdb is missing (on PATH or under /usr/lib/postgresql/*/bin), as
# for chromium. Without it those tests skip, and fail under CI=true.
postgresql:
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else echo "initdb is missing: run 'apt-get install postgresql' as root (PostgreSQL store tests skip, fail under CI=true)"; fi; }

run: $(STAMP)
	$(BIN)/posmon run

# The scripted demo (about 30 s); DEMO_ARGS="--open" opens the dashboard, "--fast" runs it on a virtual clock.
demo: $(STAMP)
	$(BIN)/posmon demo $(DEMO_ARGS)

# The benchmark (bench/README.md): about 7 minutes on 2 cores; BENCH_ARGS="--smoke" for the seconds-long version.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Side by side with NautilusTrader (bench/README.md, Peers): makes bench/peers/.venv-nautilus on first use;
# PEERS_ARGS="--smoke" runs posmon's side only, at toy sizes.
bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers $(PEERS_ARGS)

# The chaos campaign (chaos/README.md): RUNS= runs from seed SEED= over both venues, two at a time;
# CHAOS_ARGS for more (e.g. CHAOS_ARGS="--venue aster" or "--smoke"; CHAOS_ARGS="--two-venue": both simulators in
# one daemon with hedge pairs). A failing run prints its replay command.
RUNS ?= 20
SEED ?=
chaos: $(STAMP)
	$(BIN)/python -m chaos --runs $(RUNS) $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

# The same campaign against a cluster (issue 17): two or three instances on a throwaway PostgreSQL server per run,
# owner kills and pauses and database restarts among the faults; one run at a time unless CHAOS_ARGS="--jobs 2".
chaos-cluster: $(STAMP) postgresql
	$(BIN)/python -m chaos --cluster --runs $(RUNS) $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check posmon tests chaos bench deploy
	$(BIN)/ruff format --check posmon tests chaos bench deploy

# mypy over posmon/ (strict on domain, actors and exchange; configured in pyproject.toml [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck chromium postgresql
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis var
