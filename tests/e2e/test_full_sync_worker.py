"""Full syncs run by a real Celery worker: auth failures retry with backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from project.celery import app as celery_app
from sync import runs
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.openstack import connection
from sync.models import CloudHost, SyncRun
from tests.e2e.conftest import wait_for
from tests.fake_openstack import fake_openstack_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


@pytest.fixture
def fake(monkeypatch, settings):
    settings.CLOUDSYNC_RETRY_BASE_SECONDS = 0.05
    settings.CLOUDSYNC_RETRY_CAP_SECONDS = 0.2
    settings.CLOUDSYNC_SYNC_RETRY_MAX = 2
    monkeypatch.setattr(connection, "RETRY_DELAY", 0.01)
    with fake_openstack_server() as server:
        server.data.add_flavors(1)
        server.data.add_servers(4)
        yield server


@pytest.fixture
def provider(fake, provider_factory):
    return provider_factory(cloud_sync_driver="openstack.ocata", client_config=fake.client_config())


def finished(run):
    return SyncRun.objects.exclude(status=RunStatus.RUNNING).filter(pk=run.pk).first()


def test_401_then_success_is_retried_and_succeeds(fake, provider, celery_worker):
    fake.fail(401, "/identity/v3/auth/tokens", times=1)
    run = runs.start_run(provider, "full", triggered_by="test")
    done = wait_for(lambda: finished(run), timeout=30)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 4
    assert fake.count("/identity/v3/auth/tokens", "POST") >= 2


def test_401_always_fails_the_run_with_authentication_failed(fake, provider, celery_worker):
    fake.reject_tokens = True
    run = runs.start_run(provider, "full", triggered_by="test")
    done = wait_for(lambda: finished(run), timeout=30)
    assert done.status == RunStatus.FAILED
    assert "authentication failed" in done.error
    assert fake.count("/identity/v3/auth/tokens", "POST") >= 2  # retried before giving up
    assert not CloudHost.objects.filter(cloudprovider=provider).exists()


@contextmanager
def flower_view() -> Iterator[dict[str, list[dict]]]:
    """The task events a monitor such as Flower receives, by type, while the block runs."""
    seen: dict[str, list[dict]] = {"task-failed": [], "task-succeeded": [], "task-retried": []}
    receivers: list = []

    def listen() -> None:
        with celery_app.connection_for_read() as conn:
            handlers = {kind: seen[kind].append for kind in seen}
            receivers.append(celery_app.events.Receiver(conn, handlers=handlers))
            receivers[0].capture(limit=None, timeout=None, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.5)  # subscribed before the first event
    try:
        yield seen
    finally:
        if receivers:
            receivers[0].should_stop = True
        thread.join(5)


def test_a_failed_sync_is_a_failed_task_for_flower(fake, provider, celery_worker):
    fake.reject_tokens = True
    with flower_view() as seen:
        run = runs.start_run(provider, "full", triggered_by="test")
        done = wait_for(lambda: finished(run), timeout=30)
        wait_for(lambda: seen["task-failed"], timeout=10)
    assert done.status == RunStatus.FAILED
    [failed] = seen["task-failed"]
    assert "RunFailed" in failed["exception"] and f"sync run #{run.pk} failed" in failed["exception"]
    assert len(seen["task-retried"]) == 2  # CLOUDSYNC_SYNC_RETRY_MAX, then failed once
    assert not [e for e in seen["task-succeeded"] if e["uuid"] == failed["uuid"]]


def test_a_succeeded_sync_is_a_succeeded_task_for_flower(fake, provider, celery_worker):
    with flower_view() as seen:
        run = runs.start_run(provider, "full", triggered_by="test")
        done = wait_for(lambda: finished(run), timeout=30)
        wait_for(lambda: seen["task-succeeded"], timeout=10)
    assert done.status == RunStatus.SUCCEEDED
    assert seen["task-failed"] == []


def test_the_beat_task_syncs_every_enabled_provider_once(fake, provider, provider_factory, celery_worker):
    from sync.tasks import sync_all

    disabled = provider_factory(cloud_sync_driver="openstack.ocata",
                                client_config=fake.client_config(), cloud_sync_enabled=False)
    noop = provider_factory(cloud_sync_driver="noop")
    outcome = sync_all.apply(kwargs={"kind": "full"}).get()  # what beat sends, run here
    assert outcome[provider.name].startswith("run #")
    assert outcome[noop.name] == "skipped: driver 'noop' does not support full sync"
    assert outcome[disabled.name] == f"skipped: cloud sync is disabled for provider {disabled}"
    run = SyncRun.objects.get(cloudprovider=provider)
    done = wait_for(lambda: finished(run), timeout=30)
    assert done.status == RunStatus.SUCCEEDED and done.triggered_by == "beat"
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 4
    again = sync_all.apply(kwargs={"kind": "catch_up"}).get()
    assert again[provider.name].startswith("run #")
