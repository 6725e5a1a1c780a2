"""History inserts made cheaper (issue 17's 15 % budget on a full sync from
empty): the provider column loses its own index (history_external_id leads
with it) and its database constraint (a trigger per inserted row; Django's
collector still deletes a deleted provider's history); the event and run
indexes become partial (an entry has one cause or the other, NULLs are not
indexed), the event's ordered by applied time as the run's already is.

On Postgres the new indexes are built, and the old one dropped,
CONCURRENTLY (this migration is not atomic): every ``apply()`` writes
history, so a plain build on a year of entries would hold up ingest for
its whole duration. Dropping the two column indexes and the constraint
takes its lock only for an instant."""

import django.db.models.deletion
from django.db import migrations, models

from sync.migration_ops import AddIndex, RemoveIndex


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('sync', '0012_history_indexes'),
    ]

    operations = [
        AddIndex(
            model_name='historyentry',
            index=models.Index(condition=models.Q(('event__isnull', False)), fields=['event', 'applied_at'], name='history_event'),
        ),
        AddIndex(
            model_name='historyentry',
            index=models.Index(condition=models.Q(('run__isnull', False)), fields=['run', 'applied_at'], name='history_run_applied'),
        ),
        RemoveIndex(
            model_name='historyentry',
            name='history_run',
        ),
        migrations.AlterField(
            model_name='historyentry',
            name='cloudprovider',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='sync.cloudprovider'),
        ),
        migrations.AlterField(
            model_name='historyentry',
            name='event',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='history', to='sync.event'),
        ),
    ]
