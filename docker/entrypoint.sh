#!/bin/sh
# Container entry point: optionally apply migrations, then run the command.
# Only the web service sets RUN_MIGRATIONS=1 (worker and beat wait for web to
# be healthy, so they never race a migration).
set -eu

# Metrics (web and worker): prometheus-client's multiprocess directory must exist.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
    python manage.py migrate --noinput
fi

exec "$@"
