"""Shared test setup: real Postgres (DATABASE_URL), real Redis, real Celery workers.

Each test process starts its own redis-server on a free port (the same
binary the service uses), so parallel sessions and xdist workers never share
a queue. Set CLOUDSYNC_TEST_SHARED_REDIS=1 to use a DB of REDIS_URL instead."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

from project.celery import app as celery_app


def _private_redis() -> str | None:
    """A redis-server of this test process's own, on a free port, so test
    sessions running side by side never consume each other's queues."""
    binary = shutil.which("redis-server")
    if not binary or os.environ.get("CLOUDSYNC_TEST_SHARED_REDIS"):
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            return url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.terminate()
    return None


def _redis_url() -> str:
    private = _private_redis()
    if private:
        return private
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 8 + int(worker.removeprefix("gw") or 0) % 8
    return f"{base}/{db}"


TEST_REDIS_URL = _redis_url()


@pytest.fixture(scope="session", autouse=True)
def _isolated_broker():
    """Point Celery at this worker's Redis DB and start from an empty queue."""
    from sync.queueing import reset_broker

    celery_app.conf.broker_url = TEST_REDIS_URL
    reset_broker()
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
