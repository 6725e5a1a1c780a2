"""Install the default beat schedules (editable afterwards in the admin)."""

import json

from django.conf import settings
from django.db import migrations

SCHEDULES = [
    ("cloudsync: nightly full sync", "full", "CLOUDSYNC_FULL_SYNC_CRONTAB"),
    ("cloudsync: hourly catch-up", "catch_up", "CLOUDSYNC_CATCH_UP_CRONTAB"),
]


def install(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, kind, setting in SCHEDULES:
        minute, hour, dom, month, dow = getattr(settings, setting).split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=dom, month_of_year=month,
            day_of_week=dow, timezone="UTC",
        )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": "sync.tasks.sync_all",
                "crontab": crontab,
                "kwargs": json.dumps({"kind": kind}),
                "queue": "cloudsync.sync",
                "expire_seconds": 3600,
            },
        )


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(install, uninstall)]
