"""A real Celery worker (celery.contrib.testing) consuming the real Redis broker,
writing to the real test database (transactional tests, so it sees our rows)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

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


def post(client, provider, body: Any, **extra: Any) -> dict:
    """POST a body to the provider's webhook (Bearer by default); expect 202."""
    extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {provider.endpoint_secret}")
    response = client.post(
        f"/cloud-sync/provider/{provider.pk}/",
        data=json.dumps(body),
        content_type=extra.pop("content_type", "application/json"),
        **extra,
    )
    assert response.status_code == 202, response.content
    return response.json()


def done(provider, key: str):
    """The inbox event once the worker finished with it (whatever the outcome)."""
    from sync.choices import EventStatusChoices
    from sync.models import Event

    return wait_for(
        lambda: Event.objects.filter(cloudprovider=provider, key=key)
        .exclude(status=EventStatusChoices.QUEUED)
        .first()
    )

