"""Index operations for migrations of busy tables: ``CONCURRENTLY`` on
Postgres (no lock that holds up ingest for a whole index build), the plain
operation elsewhere (SQLite). Such a migration sets ``atomic = False``."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations

__all__ = ["AddIndex", "RemoveIndex", "drop_indexes"]


class _ConcurrentlyOnPostgres:
    """The CONCURRENTLY form on Postgres, the plain operation elsewhere (SQLite)."""

    plain: type

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any,
                          to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any,
                           to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndex(_ConcurrentlyOnPostgres, AddIndexConcurrently):
    plain = migrations.AddIndex

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any,
                          to_state: Any) -> None:
        # Not atomic: a run that failed after building (or while building,
        # leaving an INVALID index) must be able to run again. The index is
        # new here, so what has its name is that leftover.
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}"
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)


class RemoveIndex(_ConcurrentlyOnPostgres, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex


def drop_indexes(indexes: dict[str, tuple[str, str]], *, postgres_only: bool = False
                 ) -> migrations.RunPython:
    """Drop indexes by name (``{name: (table, column definition)}``), the
    column definition being what rebuilds them when migrating back;
    CONCURRENTLY on Postgres (the migration must not be atomic), so neither
    direction holds up the table's writers. ``postgres_only``: indexes
    Django builds on Postgres only (``varchar_pattern_ops``)."""

    def run(schema_editor: Any, template: str) -> None:
        postgres = schema_editor.connection.vendor == "postgresql"
        if postgres_only and not postgres:
            return
        for name, (table, column) in indexes.items():
            schema_editor.execute(template.format(
                concurrently="CONCURRENTLY " if postgres else "",
                name=schema_editor.quote_name(name), table=schema_editor.quote_name(table),
                column=column,
            ))

    def forwards(apps: Any, schema_editor: Any) -> None:
        run(schema_editor, "DROP INDEX {concurrently}IF EXISTS {name}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        run(schema_editor, "CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {table} ({column})")

    return migrations.RunPython(forwards, backwards, elidable=False)
