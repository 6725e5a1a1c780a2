"""Fixtures shared with the end-to-end tests: a real Celery worker (threads
pool, in this process) and a provider of the test driver ``test.hosts``
(retries after 0.05 s, dead after 3)."""

import pytest

from tests.e2e.conftest import celery_worker  # noqa: F401 (fixture)
from tests.e2e.test_failures import hosts_provider  # noqa: F401 (fixture)
from tests.metrics import triggers


@pytest.fixture
def pg_trigger():
    """Install real Postgres triggers (``tests.metrics.triggers.install``),
    removed after the test; each call returns its removal."""
    removals = []

    def add(name, model, events, body):
        removals.append(triggers.install(name, model, events, body))
        return removals[-1]

    yield add
    for remove in removals:
        remove()
