# The two commands of the README, `make run` and `make test`, and the production start,
# `make serve` (docs/deploy.md). All need only Python 3.11+ and pip; everything else
# is installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# `make run` serves the sandbox gateway from a process of its own, on this port.
SANDBOX_PORT ?= $(shell expr $(PORT) + 1)
export HOST PORT SANDBOX_PORT

.PHONY: run serve test lint bench install clean help browser
.DEFAULT_GOAL := help

help:
	@echo "make run    development: web server, Celery worker, beat and the sandbox gateway on embedded defaults (http://$(HOST):$(PORT))"
	@echo "make serve  production: deploy checks, migrate, collectstatic, then web, worker and beat (docs/deploy.md)"
	@echo "make test   run the test suite (embedded defaults, or DATABASE_URL / CELERY_BROKER_URL)"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make bench  run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: $(BIN)/python pyproject.toml
	@echo "Installing the service into $(VENV) ..."
	$(BIN)/pip install --quiet --progress-bar off -e .
	@touch $@

$(VENV)/.all-deps: $(BIN)/python pyproject.toml
	@echo "Installing the service with test and dev tools into $(VENV) ..."
	$(BIN)/pip install --quiet --progress-bar off -e ".[test,dev]"
	@touch $@ $(VENV)/.run-deps

install: $(VENV)/.run-deps

# Development mode is switched on here, explicitly: production is the default.
run: export DJANGO_DEBUG := 1
run: export PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)
run: export SANDBOX_URL ?= http://$(HOST):$(SANDBOX_PORT)
run: export WEB_CONCURRENCY ?= 2
run: $(VENV)/.run-deps
	$(BIN)/python manage.py bootstrap
	@echo ""
	@echo "  Demo shop      $(PUBLIC_BASE_URL)/"
	@echo "  Admin          $(PUBLIC_BASE_URL)/admin/"
	@echo "  API docs       $(PUBLIC_BASE_URL)/api/docs/"
	@echo "  Health         $(PUBLIC_BASE_URL)/readyz"
	@echo "  Sandbox        $(SANDBOX_URL)/sandbox/  (the gateway, a process of its own)"
	@echo "  Ctrl-C stops the web server, the worker, beat and the sandbox."
	@echo ""
	$(BIN)/honcho start --port $(PORT) --procfile Procfile

# Production: only the environment is read (docs/deploy.md lists it). Refuses to start on
# a deploy check's error, naming the variable to set.
serve: $(VENV)/.run-deps
	@echo "Deploy checks ..."
	$(BIN)/python manage.py check --deploy --fail-level ERROR
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 1
	$(BIN)/honcho start --procfile Procfile web worker beat

test: $(VENV)/.all-deps browser
	$(BIN)/pytest

# The browser tests drive Debian's Chromium (Playwright's own download cannot work here).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's chromium for the browser tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing at $(CHROMIUM): the browser tests will fail." \
	         "Install it (apt-get install chromium) or set CHROMIUM=/path/to/chromium."; \
	  fi; \
	fi

lint: $(VENV)/.all-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: $(VENV)/.all-deps
	$(BIN)/python -m bench

clean:
	rm -rf var/celery var/test.sqlite3*
