# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck pytest system-deps schema bench clean

# The WordPress tests run a real WordPress: Debian's package, PHP's built-in server, MariaDB.
SYSTEM_PACKAGES := wordpress php-cli php-mysql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ONE Gateway needs Python 3.11 or newer (set PYTHON=python3.x)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

serve: $(STAMP)
	$(BIN)/one-gateway serve --demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

system-deps:
	@if [ ! -f /usr/share/wordpress/wp-load.php ] || ! command -v php >/dev/null; then \
		echo "installing $(SYSTEM_PACKAGES) (for the WordPress tests)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi
	@command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mariadb-server; }
	@command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }
	@[ -x /usr/bin/chromium ] || { \
		echo "installing chromium (for the GraphiQL test)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

schema: $(STAMP)
	$(BIN)/one-gateway export-schema --output schema.graphql

bench: $(STAMP) system-deps
	@command -v wrk >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python bench/run.py
	$(BIN)/python bench/calibration.py
	$(BIN)/python bench/federation.py
	$(BIN)/python bench/protection.py
	$(BIN)/python bench/upstream_overhead.py
	$(BIN)/python bench/realtime.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/migration.py

clean:
	rm -rf $(VENV) .one .pytest_cache .mypy_cache .ruff_cache
