"""Split full syncs (sync/split.py): the scratch table of the ids each part
listed, and the run's per-part leases (SyncRun.parts).

An ordinary (logged) table: an unlogged one is emptied by crash recovery
and is empty on a promoted replica, and lost listed ids would become
deletions."""

from django.db import migrations, models


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
        migrations.AddField(
            model_name='syncrun',
            name='parts',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
