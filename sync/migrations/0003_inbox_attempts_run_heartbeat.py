"""Inbox attempt times and run heartbeats (crash recovery), and the sweeper's
beat schedule that uses them (editable afterwards in the admin)."""

from django.conf import settings
from django.db import migrations, models

SWEEPER = "cloudsync: sweeper (stuck events, abandoned runs)"


def install_sweeper(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.CLOUDSYNC_SWEEP_SECONDS, period="seconds"
    )
    PeriodicTask.objects.get_or_create(
        name=SWEEPER,
        defaults={
            "task": "sync.tasks.sweep",
            "interval": every,
            "queue": "cloudsync.sync",
            "expire_seconds": settings.CLOUDSYNC_SWEEP_SECONDS,
        },
    )


def uninstall_sweeper(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0002_default_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="attempted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="worker",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.RunPython(install_sweeper, uninstall_sweeper),
    ]
