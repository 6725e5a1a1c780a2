"""Shared test setup: real Postgres (DATABASE_URL), real Redis, real Celery workers.

Each test process starts its own redis-server on a free port (the same
binary the service uses), so parallel sessions and xdist workers never share
a queue. Set CLOUDSYNC_TEST_SHARED_REDIS=1 to use a DB of REDIS_URL instead."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from project.celery import app as celery_app

if TYPE_CHECKING:
    from tests.fake_openstack import FakeOpenStack


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
    """Point Celery (broker and result backend) at this worker's Redis DB and
    start from an empty queue."""
    from sync.queueing import reset_broker
    from sync.result_backend import backend_url

    celery_app.conf.broker_url = TEST_REDIS_URL
    celery_app.conf.result_backend = backend_url(TEST_REDIS_URL)  # split runs' chords
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)
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
def empty_queue() -> Iterator[None]:
    """The broker's queues emptied before and after the test (endpoint tests
    count what one request queued)."""
    from tests.broker import purge

    purge()
    yield
    purge()


@pytest.fixture
def runserver() -> Iterator[str]:
    """Django's runserver request handler (the one writing the django.server
    access log) serving the project in a thread on a free port; yields its
    base URL. The test marks its database access: the server thread has a
    connection of its own, so it sees only committed rows
    (``django_db(transaction=True)``); ``django_db`` when it needs none."""
    from django.core.handlers.wsgi import WSGIHandler

    with serve_wsgi(WSGIHandler()) as url:
        yield url


@contextlib.contextmanager
def serve_wsgi(app, *, threaded: bool = False) -> Iterator[str]:
    """Serve a WSGI app with Django's request handler (runserver's) in a
    thread on a free port of 127.0.0.1; yields its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, WSGIServer

    server = (ThreadedWSGIServer if threaded else WSGIServer)(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def openstack_server() -> Iterator[FakeOpenStack]:
    """A fake OpenStack cloud over HTTP, one per test module that uses it
    (tests take ``fake_openstack``, which resets it)."""
    from tests.fake_openstack import fake_openstack_server

    with fake_openstack_server() as server:
        yield server


@pytest.fixture
def fake_openstack(openstack_server: FakeOpenStack,
                   monkeypatch: pytest.MonkeyPatch) -> FakeOpenStack:
    """The module's fake OpenStack with fresh data, no faults and default
    switches; the driver retries after 0.01 s instead of its real delay."""
    from sync.drivers.openstack import connection

    openstack_server.reset()
    monkeypatch.setattr(connection, "RETRY_DELAY", 0.01)
    return openstack_server


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


def pytest_terminal_summary(terminalreporter):
    """Say where tests left their artifacts (screenshots): tests record them
    with ``record_property("artifact", path)``; under xdist too."""
    paths = [value for reports in terminalreporter.stats.values() for report in reports
             for name, value in getattr(report, "user_properties", ()) if name == "artifact"]
    if paths:
        terminalreporter.section("artifacts")
        for path in dict.fromkeys(paths):
            terminalreporter.write_line(f"artifact: {path}")
