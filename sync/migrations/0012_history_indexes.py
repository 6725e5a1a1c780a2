"""History indexes: a purged object's history is read by its external id
(provider, kind, external id, time), and a run's page lists what it changed
in applied order (run, time; it replaces the run column's own index)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0011_status_rollups_coverage'),
    ]

    operations = [
        migrations.AlterField(
            model_name='historyentry',
            name='run',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='history', to='sync.syncrun'),
        ),
        migrations.AddIndex(
            model_name='historyentry',
            index=models.Index(fields=['cloudprovider', 'kind', 'external_id', 'applied_at'], name='history_external_id'),
        ),
        migrations.AddIndex(
            model_name='historyentry',
            index=models.Index(fields=['run', 'applied_at'], name='history_run'),
        ),
    ]
