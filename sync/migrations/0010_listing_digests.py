"""Listing digests (sync/apply/digests.py): what the last full listing
found of each row, valid while the row's physical version is unchanged.

UNLOGGED on Postgres: a cache. Crash recovery empties it (a listing then
compares every object once more); it is not written to the WAL or to
replicas."""

from django.db import migrations, models


def _unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('ALTER TABLE "sync_listingdigest" SET UNLOGGED')


class Migration(migrations.Migration):

    dependencies = [
        ("sync", "0009_syncrun_progress"),
    ]

    operations = [
        migrations.CreateModel(
            name="ListingDigest",
            fields=[
                ("pk", models.CompositePrimaryKey("kind", "row_id", blank=True, editable=False, primary_key=True, serialize=False)),
                ("kind", models.CharField(max_length=16)),
                ("row_id", models.BigIntegerField()),
                ("row_version", models.CharField(max_length=64)),
                ("digest", models.CharField(max_length=32)),
            ],
            options={
                "verbose_name": "listing digest (re-sync cache)",
            },
        ),
        migrations.RunPython(_unlogged, migrations.RunPython.noop),
    ]
