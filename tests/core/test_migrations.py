"""Models and migrations agree (a model change without its migration fails here)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_default_beat_schedules_are_installed():
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.values_list("name", "kwargs"))
    assert tasks["cloudsync: nightly full sync"] == '{"kind": "full"}'
    assert tasks["cloudsync: hourly catch-up"] == '{"kind": "catch_up"}'


@pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'")
def test_the_history_index_migration_runs_again_after_failing_halfway():
    """0013 is not atomic (its indexes are built CONCURRENTLY): a run that
    failed after building one (here: the index is there, 0013 not recorded)
    runs again to the same schema. On its own throwaway database."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from django.db import connection

    root = Path(__file__).resolve().parents[2]
    settings = connection.settings_dict
    name = f"cs_migration_{os.getpid()}"
    admin = f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/postgres"
    url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))

    def migrate(*target: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", *target, "-v0"], cwd=root, check=True,
            env={**os.environ, "DATABASE_URL": url}, timeout=300,
        )

    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate("sync", "0012")
        with psycopg.connect(url, autocommit=True) as db:  # what the failed run left
            db.execute("CREATE INDEX history_event ON sync_historyentry (id)")
        migrate()
        with psycopg.connect(url) as db:
            indexes = dict(db.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sync_historyentry'"
            ).fetchall())
        assert "(event_id, applied_at) WHERE (event_id IS NOT NULL)" in indexes["history_event"]
        assert "history_run_applied" in indexes and "history_run" not in indexes
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db
def test_no_table_indexes_its_provider_twice():
    """A table whose unique constraint leads with ``cloudprovider_id`` has no
    second index of that column alone (0014): one more index write on every
    insert and non-HOT update, and the index a planner without statistics
    picked to read every row of a provider instead of the few asked for."""
    from django.db import connection

    doubled = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if not table.startswith("sync_"):
                continue
            found = connection.introspection.get_constraints(cursor, table).values()
            indexed = [c["columns"] for c in found if c["index"] or c["unique"]]
            if ["cloudprovider_id"] in indexed and any(
                len(cols) > 1 and cols[0] == "cloudprovider_id" for cols in indexed
            ):
                doubled.append(table)
    assert doubled == []


@pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'")
@pytest.mark.django_db
def test_the_busy_tables_have_no_pattern_ops_index():
    """0015: the inbox, hosts, ports and history carry no ``varchar_pattern_ops``
    index (``LIKE 'prefix%'`` only; no query of the project asks it of them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexdef LIKE '%%pattern_ops%%'",
            [["sync_event", "sync_cloudhost", "sync_cloudport", "sync_historyentry"]],
        )
        assert cursor.fetchall() == []
