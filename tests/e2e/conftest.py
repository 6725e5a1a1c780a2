"""A real Celery worker (celery.contrib.testing) consuming the real Redis broker,
writing to the real test database (transactional tests, so it sees our rows)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from celery.contrib.testing.worker import start_worker

from project.celery import app as celery_app
from tests.broker import purge


@pytest.fixture
def celery_worker(transactional_db):
    purge()
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=["cloudsync.events", "cloudsync.sync"],
        shutdown_timeout=10,
    ) as worker:
        yield worker
    purge()


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05):
    """Poll until predicate() is truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, f"condition not met within {timeout}s"
    return value
