"""Status page (issue 15, part B): per-minute event rollups written by the
worker (sync.rollups), and each full sync's event coverage (sync.coverage).

Rollups start empty: the charts show what workers did after this migration."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0007_listed_ids'),
    ]

    operations = [
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
        migrations.CreateModel(
            name='EventRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('minute', models.DateTimeField()),
                ('outcome', models.CharField(max_length=10)),
                ('lag_bucket', models.SmallIntegerField(default=-1)),
                ('count', models.BigIntegerField(default=0)),
                ('cloudprovider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='sync.cloudprovider')),
            ],
            options={
                'indexes': [models.Index(fields=['minute'], name='event_rollup_minute')],
                'constraints': [models.UniqueConstraint(fields=('cloudprovider', 'minute', 'outcome', 'lag_bucket'), name='uniq_event_rollup')],
            },
        ),
    ]
