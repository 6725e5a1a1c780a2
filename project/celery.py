"""The Celery app: ``celery -A project worker -Q cloudsync.events,cloudsync.sync``."""

import os

from celery import Celery, states
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)
from kombu import Exchange, Queue

from sync.names import EVENTS_QUEUE, ROUTES, SYNC_QUEUE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("cloudsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue is bound under its own name as routing key. Celery publishes to a
# direct exchange's queue by that name, and kombu's Redis transport keeps a
# queue as the list of that name: the web process LPUSHes ingest messages
# straight onto the list "cloudsync.events" (sync/queueing.py). Without an
# explicit binding both queues were bound with key "cloudsync.events".
EXCHANGE = Exchange("cloudsync", type="direct")
app.conf.task_queues = (
    Queue(EVENTS_QUEUE, EXCHANGE, routing_key=EVENTS_QUEUE),
    Queue(SYNC_QUEUE, EXCHANGE, routing_key=SYNC_QUEUE),
)
app.conf.task_default_exchange = EXCHANGE.name
app.conf.task_default_exchange_type = EXCHANGE.type
app.conf.task_default_routing_key = EVENTS_QUEUE
app.conf.task_routes = ROUTES
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _tune_gc(**_: object) -> None:
    """Fewer, cheaper garbage collections in workers (``sync.gc_tuning``)."""
    from sync.gc_tuning import tune

    tune()


def _eager(task: object) -> bool:
    """Run in the caller's process (``apply()``): its connection, its transaction."""
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


@task_prerun.connect
def _database_before_task(sender: object = None, **_: object) -> None:
    """Before each task (each message of a batch), as Django does when a
    request starts: a connection older than CONN_MAX_AGE (it may have sat
    idle) or left unusable is closed, and the next use of the one kept
    checks it first (CONN_HEALTH_CHECKS: a connection the database dropped
    in between is replaced). Celery's fixup leaves connections open
    (CELERY_DB_REUSE_MAX in settings)."""
    from django.db import close_old_connections

    if not _eager(sender):
        close_old_connections()


@task_postrun.connect
def _database_after_task(sender: object = None, state: str | None = None, **_: object) -> None:
    """After each task: the same as before one, and after a task that did not
    succeed every connection is closed, whatever its age."""
    from django.db import close_old_connections, connections

    if _eager(sender):
        return
    if state == states.SUCCESS:
        close_old_connections()
        return
    for conn in connections.all(initialized_only=True):
        conn.close()


@worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **_: object) -> None:
    """A pool process exits: its live gauges leave the metrics directory
    (``sync.metrics``; counters stay in the totals)."""
    from sync.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())
