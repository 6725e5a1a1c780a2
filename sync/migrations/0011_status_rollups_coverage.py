"""Status page (issue 15, part B): per-5-minute event rollups written by the
worker (sync.rollups), each full sync's event coverage (sync.coverage), and
a partial index of the inbox backlog (queued, failed, dead) per provider.

Rollups start empty: the charts show what workers did after this migration.
Building the partial index reads the whole inbox once."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0010_listing_digests'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period', models.DateTimeField(help_text='Start of the 5-minute period (UTC).')),
                ('outcome', models.CharField(max_length=10)),
                ('lag_bucket', models.SmallIntegerField(default=-1)),
                ('count', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name='syncrun',
            name='coverage_since',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='syncrun',
            name='events_applied',
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(condition=models.Q(('status__in', ['queued', 'failed', 'dead'])), fields=['cloudprovider', 'status'], name='event_backlog'),
        ),
        migrations.AddField(
            model_name='eventrollup',
            name='cloudprovider',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='sync.cloudprovider'),
        ),
        migrations.AddIndex(
            model_name='eventrollup',
            index=models.Index(fields=['period'], name='event_rollup_period'),
        ),
        migrations.AddConstraint(
            model_name='eventrollup',
            constraint=models.UniqueConstraint(fields=('cloudprovider', 'period', 'outcome', 'lag_bucket'), name='uniq_event_rollup'),
        ),
    ]
