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
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class _ConcurrentlyOnPostgres:
    """The CONCURRENTLY form on Postgres, the plain operation elsewhere (SQLite)."""

    plain: type

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndex(_ConcurrentlyOnPostgres, AddIndexConcurrently):
    plain = migrations.AddIndex

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
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
