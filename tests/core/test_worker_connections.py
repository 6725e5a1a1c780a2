"""A pool process keeps its database connection from one task to the next.

Celery's Django fixup closes every connection after each task unless
``CELERY_DB_REUSE_MAX`` is set; a batch of 200 bodies sends task_prerun and
task_postrun per body (sync/batching.py), so without it every batch paid for
a new Postgres backend and its cold caches. ``project.celery`` closes a
connection sooner when Django would (older than CONN_MAX_AGE, unusable) and
after a task that did not succeed. These run the real fixup and the real
receivers against the real test database (autocommit: transactional tests).
"""

from __future__ import annotations

import time

import pytest
from celery import signals, states
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from project.celery import app as celery_app
from sync.tasks import ingest_task

pytestmark = pytest.mark.django_db(transaction=True)


def _backend() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()" if connection.vendor == "postgresql"
                       else "SELECT 1")
        return cursor.fetchone()[0]


@pytest.fixture
def reusable():
    """A connection Django may keep for a minute (the suite runs with
    CONN_MAX_AGE=0, where Django itself closes after every request)."""
    before = connection.settings_dict["CONN_MAX_AGE"]  # (the same dict as settings')
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60
    yield
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = before


def _task_signals(state: str, messages: int) -> None:
    """What a worker sends around one batch of ``messages`` bodies."""
    for _ in range(messages):
        signals.task_prerun.send(sender=ingest_task, task_id="t", task=ingest_task, args=(),
                                 kwargs={})
    for _ in range(messages):
        signals.task_postrun.send(sender=ingest_task, task_id="t", task=ingest_task, args=(),
                                  kwargs={}, retval=None, state=state)


@pytest.fixture
def fixup():
    """Celery's Django fixup as a worker installs it, connected for the test."""
    worker_fixup = DjangoWorkerFixup(celery_app)
    signals.task_prerun.connect(worker_fixup.on_task_prerun)
    signals.task_postrun.connect(worker_fixup.on_task_postrun)
    yield worker_fixup
    signals.task_prerun.disconnect(worker_fixup.on_task_prerun)
    signals.task_postrun.disconnect(worker_fixup.on_task_postrun)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_batches_reuse_the_connection(reusable, fixup):
    assert fixup.db_reuse_max, "CELERY_DB_REUSE_MAX must reach the fixup"
    first = _backend()
    for _ in range(5):  # five batches of 200 bodies
        _task_signals(states.SUCCESS, 200)
        assert connection.connection is not None
        assert _backend() == first


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_failed_task_closes_the_connection(reusable, fixup):
    first = _backend()
    _task_signals(states.REJECTED, 3)  # a batch whose messages went back to the queue
    assert connection.connection is None
    assert _backend() != first


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_connection_older_than_conn_max_age_is_closed(reusable, fixup):
    first = _backend()
    _task_signals(states.SUCCESS, 1)
    assert _backend() == first
    connection.close_at = time.monotonic() - 1  # its minute is up
    _task_signals(states.SUCCESS, 1)
    assert connection.connection is None
    assert _backend() != first


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_connection_the_server_dropped_is_replaced_at_its_next_use(reusable, fixup):
    first = _backend()
    other = connection.copy()  # the server ends the session, as a restart would
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
            assert cursor.fetchone()[0]
    finally:
        other.close()
    _task_signals(states.SUCCESS, 1)
    # CONN_HEALTH_CHECKS: the next use finds it dead and connects again
    assert _backend() != first


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_task_run_in_the_callers_process_leaves_its_connection_alone(reusable):
    """``apply()`` runs a task in the caller's process, inside the caller's
    transaction: neither failure nor success closes that connection."""
    from django.db import transaction

    with transaction.atomic():
        first = _backend()
        ingest_task.push_request(is_eager=True)
        try:
            _task_signals(states.FAILURE, 1)
        finally:
            ingest_task.pop_request()
        assert connection.connection is not None
        assert _backend() == first


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_after_a_database_error_a_dropped_connection_is_still_replaced(reusable, fixup):
    """A handled error (a lock timeout, a deadlock) makes Django check the
    connection at the end of that task; the next task must check it again,
    or a connection the server dropped in between fails that task."""
    from django.db import OperationalError

    first = _backend()
    with connection.cursor() as cursor:  # (autocommit: no rollback resets the flag)
        cursor.execute("SET statement_timeout = '1ms'")
        with pytest.raises(OperationalError):
            cursor.execute("SELECT pg_sleep(1)")  # canceled
        cursor.execute("SET statement_timeout = 0")
    assert connection.errors_occurred
    _task_signals(states.SUCCESS, 1)  # the task that handled it ends
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    finally:
        other.close()
    # the next task starts, and its first query must find a live connection
    signals.task_prerun.send(sender=ingest_task, task_id="t", task=ingest_task, args=(), kwargs={})
    assert _backend() != first
