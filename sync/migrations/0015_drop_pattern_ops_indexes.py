"""Postgres only: drop the ``varchar_pattern_ops`` twins Django builds beside
the index of a ``db_index`` CharField (``…_like``). They serve only
``LIKE 'prefix%'`` under a non-C collation, and no query of the project asks
that of these columns (filters are exact or ``icontains``, which no btree
serves); every inbox insert, every host and port insert and every non-HOT
update of those rows wrote them (bench/README.md, 2026-11-29: −6 % of the
server's CPU in an event batch). The plain index of each column stays.
Dropped CONCURRENTLY (not atomic): no writer waits on it."""

from django.db import migrations

from sync.migration_ops import drop_indexes

LIKE_INDEXES = {
    "sync_event_event_type_80500309_like": ("sync_event", '"event_type" varchar_pattern_ops'),
    "sync_cloudhost_hostname_ea6c476b_like": ("sync_cloudhost", '"hostname" varchar_pattern_ops'),
    "sync_cloudhost_hypervisor_416a2578_like": (
        "sync_cloudhost",
        '"hypervisor" varchar_pattern_ops',
    ),
    "sync_cloudport_parent_port_id_6c68f765_like": (
        "sync_cloudport",
        '"parent_port_id" varchar_pattern_ops',
    ),
}


class Migration(migrations.Migration):
    atomic = False  # (DROP INDEX CONCURRENTLY)

    dependencies = [
        ("sync", "0014_provider_fk_indexes_in_unique_constraints"),
    ]

    operations = [drop_indexes(LIKE_INDEXES, postgres_only=True)]
