"""Shared test setup: real Postgres (DATABASE_URL), real Redis (one DB per
xdist worker so parallel runs never share a queue), real Celery workers."""

from __future__ import annotations

import os

import pytest
import redis

from project.celery import app as celery_app


def _redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 8 + int(worker.removeprefix("gw") or 0) % 8
    return f"{base}/{db}"


TEST_REDIS_URL = _redis_url()


@pytest.fixture(scope="session", autouse=True)
def _isolated_broker():
    """Point Celery at this worker's Redis DB and start from an empty queue."""
    celery_app.conf.broker_url = TEST_REDIS_URL
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    yield


@pytest.fixture(autouse=True)
def _fresh_caches():
    from sync.drivers.registry import reset_registry
    from sync.endpoint import clear_provider_cache

    clear_provider_cache()
    reset_registry()
    yield
    clear_provider_cache()


@pytest.fixture
def provider_factory(db):
    from sync.models import CloudProvider

    counter = iter(range(1, 10_000))

    def make(**kwargs) -> CloudProvider:
        kwargs.setdefault("name", f"cloud-{next(counter)}-{os.getpid()}")
        kwargs.setdefault("cloud_sync_enabled", True)
        kwargs.setdefault("cloud_sync_driver", "noop")
        provider = CloudProvider(**kwargs)
        provider.full_clean()
        provider.save()
        return provider

    return make


@pytest.fixture
def provider(provider_factory):
    return provider_factory()
