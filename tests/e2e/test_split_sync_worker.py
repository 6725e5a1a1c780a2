"""Split full syncs through a real Celery worker: a chord of part tasks on
the real Redis broker and result backend, then the finish task; real
openstacksdk against the fake OpenStack."""

from __future__ import annotations

import pytest

from sync import runs
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.openstack import connection
from sync.models import CloudHost, CloudImage, ListedId, SyncRun
from tests.e2e.conftest import wait_for
from tests.fake_openstack import fake_openstack_server
from tests.inventory import inventory_of

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
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 100
    monkeypatch.setattr(connection, "RETRY_DELAY", 0.01)
    with fake_openstack_server() as server:
        server.data.add_projects(2)
        server.data.add_flavors(3)
        server.data.add_image()
        yield server


def provider_of(fake, provider_factory):
    return provider_factory(cloud_sync_driver="openstack.ocata", client_config=fake.client_config())


def synced(provider):
    """A full sync queued as beat or the API would, once the worker finished it."""
    run = runs.start_run(provider, "full", triggered_by="test")
    return wait_for(
        lambda: SyncRun.objects.exclude(status=RunStatus.RUNNING).filter(pk=run.pk).first(),
        timeout=60)


def test_split_and_unsplit_runs_give_the_same_inventory(fake, provider_factory, settings,
                                                        celery_worker):
    # given two providers of the same cloud, synced once (the first run never
    # splits: there is no previous run to count)
    servers = fake.data.add_servers(40)
    one, parts = provider_of(fake, provider_factory), provider_of(fake, provider_factory)
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 0
    assert synced(one).status == RunStatus.SUCCEEDED
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 80  # 40 servers + 40 ports + the catalog
    first = synced(parts)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert not first.worker.startswith(runs.SPLIT)
    # when the cloud drifted, and one is synced in one piece, the other split
    fake.data.delete_server(servers[0]["id"])
    fake.data.delete_server(servers[1]["id"])
    fake.data.update_server(servers[2]["id"], name="renamed")
    fake.data.add_servers(3)
    fake.data.add_flavors(1)
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 0
    unsplit = synced(one)
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 80
    split = synced(parts)
    # then the split run went through the chord and ended as the unsplit one
    assert split.status == unsplit.status == RunStatus.SUCCEEDED, split.error
    assert split.worker.startswith(runs.SPLIT) and not unsplit.worker.startswith(runs.SPLIT)
    assert split.counts == unsplit.counts
    assert split.drift["host"]["counts"] == {"created": 3, "updated": 1, "deleted": 2}
    assert inventory_of(parts) == inventory_of(one)
    assert CloudHost.objects.filter(cloudprovider=parts).count() == 41
    assert not ListedId.objects.exists()


def test_a_split_run_whose_part_fails_mid_listing_fails_and_deletes_nothing(
    fake, provider_factory, settings, celery_worker
):
    # given a synced provider whose cloud lost 5 servers and an image since
    servers = fake.data.add_servers(30)
    unused = fake.data.add_image(name="unused")
    provider = provider_of(fake, provider_factory)
    assert synced(provider).status == RunStatus.SUCCEEDED
    for s in servers[:5]:
        fake.data.delete_server(s["id"])
    fake.data.delete_image(unused["id"])
    # when the split run's servers part fails on its second page, every try
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 1
    fake.nova_max_limit = 10
    fake.fail(500, "/compute/v2.1/servers/detail", after=1, times=1000)
    before = fake.count("/compute/v2.1/servers/detail")
    run = synced(provider)
    # then the run failed with the part's error after the part's retries,
    # and nothing was deleted, by any part
    assert run.status == RunStatus.FAILED
    assert run.worker.startswith(runs.SPLIT)
    assert run.error.startswith("part servers failed: network error: listing servers failed"), \
        run.error
    # the first try failed on its second page, the 2 retries on their first
    assert fake.count("/compute/v2.1/servers/detail") - before == 2 + 1 + 1
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 30
    assert CloudImage.objects.filter(cloudprovider=provider, image_id=unused["id"]).exists()
    wait_for(lambda: not ListedId.objects.exists(), timeout=10)
    provider.refresh_from_db()
    assert provider.last_full_sync_status == RunStatus.FAILED
    # and the lock is free: the next run (the cloud healthy again) deletes them
    fake.clear_faults()
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 1
    again = synced(provider)
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 25
    assert not CloudImage.objects.filter(cloudprovider=provider, image_id=unused["id"]).exists()
