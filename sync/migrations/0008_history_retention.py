"""Object history (written by apply()), the retention purge's log, and the
purge's beat schedule (installed once, editable afterwards in the admin)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PURGE = "cloudsync: retention purge (inbox, history, plans, tombstones)"


def install_purge(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    minute, hour, dom, month, dow = settings.CLOUDSYNC_PURGE_CRONTAB.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=dom, month_of_year=month,
        day_of_week=dow, timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name=PURGE,
        defaults={
            "task": "sync.tasks.purge",
            "crontab": crontab,
            "queue": "cloudsync.sync",
            "expire_seconds": 3600,
        },
    )


def uninstall_purge(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=PURGE).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('sync', '0007_listed_ids'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='PurgeRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('settings', models.JSONField(default=dict)),
                ('removed', models.JSONField(default=dict)),
                ('batches', models.PositiveIntegerField(default=0)),
                ('error', models.TextField(blank=True, default='')),
            ],
            options={
                'ordering': ['-started_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='HistoryEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=16)),
                ('object_pk', models.BigIntegerField()),
                ('external_id', models.CharField(max_length=255)),
                ('applied_at', models.DateTimeField()),
                ('action', models.CharField(choices=[('created', 'Created'), ('updated', 'Updated'), ('deleted', 'Deleted'), ('restored', 'Restored (resurrected by a full sync)')], max_length=10)),
                ('changes', models.JSONField(default=dict)),
                ('cause', models.CharField(choices=[('event', 'Inbox event'), ('full', 'Full sync'), ('catch_up', 'Catch-up'), ('snapshot', 'Pushed snapshot'), ('plan', 'Plan applied by an operator')], max_length=10)),
                ('event_type', models.CharField(blank=True, default='', max_length=255)),
                ('occurred_at', models.DateTimeField(blank=True, null=True)),
                ('actor', models.CharField(blank=True, default='', max_length=100)),
                ('cloudprovider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='sync.cloudprovider')),
                ('event', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='history', to='sync.event')),
                ('run', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='history', to='sync.syncrun')),
            ],
            options={
                'verbose_name_plural': 'history entries',
                'ordering': ['-applied_at', '-id'],
                'indexes': [models.Index(fields=['kind', 'object_pk', 'applied_at'], name='history_object'), models.Index(fields=['applied_at'], name='history_applied_at')],
            },
        ),
        migrations.RunPython(install_purge, uninstall_purge),
    ]
