"""Full syncs run by a real Celery worker: auth failures retry with backoff."""

from __future__ import annotations

import pytest

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


def test_the_beat_task_syncs_every_enabled_provider_once(fake, provider, provider_factory, celery_worker):
    from sync.tasks import sync_all

    disabled = provider_factory(cloud_sync_driver="openstack.ocata",
                                client_config=fake.client_config(), cloud_sync_enabled=False)
    noop = provider_factory(cloud_sync_driver="noop")
    outcome = sync_all.apply(kwargs={"kind": "full"}).get()  # what beat sends, run here
    assert outcome[provider.name].startswith("run #")
    assert outcome[noop.name].startswith("skipped: driver noop does not support full sync")
    assert disabled.name not in outcome
    run = SyncRun.objects.get(cloudprovider=provider)
    done = wait_for(lambda: finished(run), timeout=30)
    assert done.status == RunStatus.SUCCEEDED and done.triggered_by == "beat"
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 4
    again = sync_all.apply(kwargs={"kind": "catch_up"}).get()
    assert again[provider.name].startswith("run #")
