"""Models and migrations agree (a model change without its migration fails here)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_default_beat_schedules_are_installed():
    from django_celery_beat.models import PeriodicTask

    tasks = dict(PeriodicTask.objects.values_list("name", "kwargs"))
    assert tasks["cloudsync: nightly full sync"] == '{"kind": "full"}'
    assert tasks["cloudsync: hourly catch-up"] == '{"kind": "catch_up"}'
