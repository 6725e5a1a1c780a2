#!/bin/sh
# Container entry point: optionally apply migrations, then run the command.
# Only the web service sets RUN_MIGRATIONS=1 (worker and beat wait for web to
# be healthy, so they never race a migration).
set -eu

if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
    python manage.py migrate --noinput
fi

exec "$@"
