"""Postgres only: drop the ``varchar_pattern_ops`` twins Django builds beside
the index of a ``db_index`` CharField (``…_like``). They serve only
``LIKE 'prefix%'`` under a non-C collation, and no query of the project asks
that of these columns (filters are exact or ``icontains``, which no btree
serves); every inbox insert, every host and port insert and every non-HOT
update of those rows wrote them (bench/README.md, 2026-11-29: −6 % of the
server's CPU in an event batch). The plain index of each column stays.
Dropping an index takes its lock only for an instant."""

from django.db import migrations

LIKE_INDEXES = {
    "sync_event_event_type_80500309_like": ("sync_event", "event_type"),
    "sync_cloudhost_hostname_ea6c476b_like": ("sync_cloudhost", "hostname"),
    "sync_cloudhost_hypervisor_416a2578_like": ("sync_cloudhost", "hypervisor"),
    "sync_cloudport_parent_port_id_6c68f765_like": ("sync_cloudport", "parent_port_id"),
}


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return  # (Django builds them on Postgres only)
    for name in LIKE_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, column) in LIKE_INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0014_provider_fk_indexes_in_unique_constraints"),
    ]

    operations = [migrations.RunPython(drop, create, elidable=False)]
