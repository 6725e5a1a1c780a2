"""Fixtures shared with the end-to-end tests: a real Celery worker (threads
pool, in this process) and a provider of the test driver ``test.hosts``
(retries after 0.05 s, dead after 3)."""

from tests.e2e.conftest import celery_worker  # noqa: F401 (fixture)
from tests.e2e.test_failures import hosts_provider  # noqa: F401 (fixture)
