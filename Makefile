# What CI runs (.ci/run calls `make test`) and what developers run locally.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# only the test folders that exist: plugins come and go. The end-to-end folder comes first so
# its long tests start early instead of stretching the end of the run
TEST_PATHS := $(wildcard tests host/tests plugins/*/tests)
SRC_PATHS := host/src $(wildcard plugins/*/src)
# each plugin's src/ is an import root like host/src, else mypy sees its files under two names
export MYPYPATH := $(shell ls -d plugins/*/src 2>/dev/null | paste -sd: -)

# pip puts uv in ~/.local/bin when it installs for the user only (not root, or a system Python)
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: test lint serve sync uv pytest demo demo-small demo-full

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install uv \
		|| python3 -m pip install --break-system-packages uv

sync: uv
	uv sync --all-packages

# the suite mostly waits on servers and sandboxes, so more workers than cores still pay off;
# each worker starts its own PostgreSQL and Redis
PYTEST_WORKERS ?= 3

# pytest exits 5 when it collected nothing: a broken collection must not look like a pass
pytest: sync
	@status=0; uv run pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=20 $(TEST_PATHS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$status

test: pytest
	uv run ruff check
	uv run mypy $(SRC_PATHS)

lint: sync
	uv run ruff check
	uv run ruff format --check
	uv run mypy $(SRC_PATHS)

serve: sync
	uv run crmhost serve

# the whole product on this machine, roadmap-sized: host (SQLite, in-process jobs), the sandbox
# of every installed CRM plugin connected through OAuth, 10,000 + 10,000 contacts, 50,000
# events, deletes both ways; exits non-zero unless every side ends as expected (figures:
# docs/performance.md)
demo: sync
	uv run python -m crmhost.demo

# the same scenario at 2,000 + 2,000 contacts and 10,000 events (about a minute)
demo-small: sync
	uv run python -m crmhost.demo --contacts 2000 --crm-contacts 2000 --events 10000 --deletes 20

# the name the roadmap-sized run had before it became `make demo`
demo-full: demo
