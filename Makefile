# cloudsync: `make run` runs the service, `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cloudsync
PORT ?= 8000
FLOWER_PORT ?= 5555
PYTEST_ARGS ?=
FAULTS_ARGS ?=

.PHONY: run test test-faults venv dev-venv check-redis migrate lint bench clean clean-queue

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.installed
dev-venv: $(BIN)/.installed-dev

check-redis: venv
	@REDIS_URL=$(REDIS_URL) $(BIN)/python scripts/check_redis.py

migrate: venv
	$(BIN)/python manage.py migrate --noinput

# Web (runserver) + worker + beat + Flower on SQLite and the local Redis.
# Ctrl-C stops all of them (scripts/run.py: one SIGTERM each, then exit 0).
# Flower listens on 127.0.0.1 with its HTTP API open (FLOWER_UNAUTHENTICATED_API)
# unless FLOWER_BASIC_AUTH=user:password is set.
run: venv check-redis migrate
	@echo "cloudsync: web http://127.0.0.1:$(PORT)/admin/  API http://127.0.0.1:$(PORT)/api/docs/  Flower http://127.0.0.1:$(FLOWER_PORT)/"
	@REDIS_URL=$(REDIS_URL) PORT=$(PORT) FLOWER_PORT=$(FLOWER_PORT) $(BIN)/python scripts/run.py

# Queued work stays in Redis across runs: drop what `make run` left queued
# (events not yet ingested, runs not yet started) at REDIS_URL.
clean-queue: venv
	@REDIS_URL=$(REDIS_URL) $(BIN)/python scripts/clean_queue.py

# The test suite on Postgres + Redis (both must answer; .ci/run starts them),
# then the fault-injection suite (FAULTS=0 skips it, e.g. with PYTEST_ARGS=-k ...).
FAULTS ?= 1
test: dev-venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(REDIS_URL) DB_CONN_MAX_AGE=0 \
	  $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	@if [ "$(FAULTS)" = "1" ]; then $(MAKE) --no-print-directory test-faults; fi

# The fault-injection suite (tests/faults, issue 10), serially: each module
# starts its own redis-server (AOF), Postgres cluster (initdb of the installed
# server), gunicorn, worker and beat on free ports and breaks them. Plain
# pytest runs leave it out. Exit code 5 (nothing selected) is not a failure.
test-faults: dev-venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(REDIS_URL) \
	  $(BIN)/python -m pytest -m faults -p no:xdist $(FAULTS_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: dev-venv
	$(BIN)/ruff check sync project tests bench relay

bench: dev-venv
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/fullsync.py
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench.retention
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.status

clean:
	rm -rf $(VENV) db.sqlite3*
