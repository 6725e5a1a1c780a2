"""The provider column of the inventory tables, the inbox and the event
rollups loses its own index: each table's unique constraint leads with it
(uniq_<kind>_id, uniq_event_key, uniq_event_rollup), so lookups by provider
keep an index. The single-column index cost every insert and every non-HOT
update one more index write, and a planner without statistics yet (a table
that grew fast since its last ANALYZE: a new provider's first burst) chose
it for "cloudprovider_id = P AND <external id> = ANY(...)", reading every
row of the provider instead of the few asked for (bench/README.md,
2026-11-29).

Only the indexes are dropped, CONCURRENTLY on Postgres (this migration is
not atomic; nothing waits on it, and it waits on nothing, while workers
run): Django's own AlterField would drop and re-add each foreign key,
validating it again over the whole table under a lock."""

import django.db.models.deletion
from django.db import migrations, models

from sync.migration_ops import drop_indexes

INDEXES = {
    "sync_cloudflavor_cloudprovider_id_db880b11": ("sync_cloudflavor", '"cloudprovider_id"'),
    "sync_cloudhost_cloudprovider_id_98fe0534": ("sync_cloudhost", '"cloudprovider_id"'),
    "sync_cloudimage_cloudprovider_id_d5b9247f": ("sync_cloudimage", '"cloudprovider_id"'),
    "sync_cloudport_cloudprovider_id_bcba4afc": ("sync_cloudport", '"cloudprovider_id"'),
    "sync_cloudproject_cloudprovider_id_59bfa941": ("sync_cloudproject", '"cloudprovider_id"'),
    "sync_event_cloudprovider_id_6c255018": ("sync_event", '"cloudprovider_id"'),
    "sync_eventrollup_cloudprovider_id_100039c2": ("sync_eventrollup", '"cloudprovider_id"'),
}


class Migration(migrations.Migration):
    atomic = False  # (DROP INDEX CONCURRENTLY on Postgres)

    dependencies = [
        ("sync", "0013_history_cheaper_inserts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[drop_indexes(INDEXES)],
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="cloudprovider",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="sync.cloudprovider",
                        **extra,
                    ),
                )
                for model, extra in (
                    ("cloudflavor", {}),
                    ("cloudhost", {}),
                    ("cloudimage", {}),
                    ("cloudport", {}),
                    ("cloudproject", {}),
                    ("event", {"related_name": "events"}),
                    ("eventrollup", {"related_name": "+"}),
                )
            ],
        ),
    ]
