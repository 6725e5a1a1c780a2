"""Split full syncs (sync/split.py): the scratch table of the ids each part
listed, and the run's per-part leases (SyncRun.parts).

UNLOGGED on Postgres (no WAL: the rows live only while their run runs);
other databases get an ordinary table."""

from django.db import migrations, models


def unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE sync_listedid SET UNLOGGED")


def logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE sync_listedid SET LOGGED")


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0006_provider_listing_floors'),
    ]

    operations = [
        migrations.CreateModel(
            name='ListedId',
            fields=[
                ('pk', models.CompositePrimaryKey('run_id', 'kind', 'external_id', blank=True, editable=False, primary_key=True, serialize=False)),
                ('run_id', models.BigIntegerField()),
                ('kind', models.CharField(max_length=16)),
                ('external_id', models.CharField(max_length=255)),
            ],
            options={
                'verbose_name': 'listed id (split run scratch)',
            },
        ),
        migrations.RunPython(unlogged, logged),
        migrations.AddField(
            model_name='syncrun',
            name='parts',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
