"""The Celery app: ``celery -A project worker -Q cloudsync.events,cloudsync.sync``."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("cloudsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("cloudsync.events"), Queue("cloudsync.sync"))
app.conf.task_routes = {
    "sync.tasks.ingest": {"queue": "cloudsync.events"},
    "sync.tasks.replay": {"queue": "cloudsync.events"},
    "sync.tasks.run_sync": {"queue": "cloudsync.sync"},
    "sync.tasks.apply_plan": {"queue": "cloudsync.sync"},
    "sync.tasks.sync_all": {"queue": "cloudsync.sync"},
}
app.autodiscover_tasks()
