"""SyncRun.progress: a running sync's progress as it streams (sync/progress.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0008_history_retention'),
    ]

    operations = [
        migrations.AddField(
            model_name='syncrun',
            name='progress',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
