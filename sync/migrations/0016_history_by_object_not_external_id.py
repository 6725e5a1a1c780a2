"""History entries are no longer indexed by external id (random keys: a
full sync from empty at 100k servers paid a sixth of history's cost for
that index). A provider's entries get an index of their own (provider
deletion), and "deleted" entries an index by external id, through which a
purged object's history is still found (``sync.history_reads``).

Built and dropped CONCURRENTLY on Postgres (not atomic, like 0013): every
``apply()`` writes history. The new indexes are built before the old one
goes, so a provider's deletion always has an index."""

from django.db import migrations, models

from sync.migration_ops import AddIndex, RemoveIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sync", "0015_drop_pattern_ops_indexes"),
    ]

    operations = [
        AddIndex(
            model_name="historyentry",
            index=models.Index(fields=["cloudprovider", "applied_at"], name="history_provider"),
        ),
        AddIndex(
            model_name="historyentry",
            index=models.Index(
                condition=models.Q(("action", "deleted"), ("changes__has_key", "deleted_at"),
                                   _connector="OR"),
                fields=["external_id"],
                name="history_deleted",
            ),
        ),
        RemoveIndex(
            model_name="historyentry",
            name="history_external_id",
        ),
    ]
