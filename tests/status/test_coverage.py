"""Event coverage (sync.coverage) recorded on full syncs: a cloud where 10
servers went away, events told cloudsync about 7 and were withheld for 3."""

from __future__ import annotations

import pytest
from django.utils import timezone

from sync import coverage, ingest
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudHost
from tests.status.scenario import delete_end
from tests.sync.test_full_sync import full_sync

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]


@pytest.fixture
def provider(fake_openstack, provider_factory):
    fake_openstack.data.add_flavors(1)
    fake_openstack.data.add_image()
    fake_openstack.data.add_servers(20, with_ports=False)
    return provider_factory(cloud_sync_driver="openstack.ocata",
                            client_config=fake_openstack.client_config())


def withhold_three_of_ten(fake_openstack, provider) -> None:
    """10 servers deleted in the cloud; events for 7 reach the inbox."""
    gone = sorted(fake_openstack.data.servers.records)[:10]
    for server_id in gone:
        fake_openstack.data.delete_server(server_id)
    report = ingest.ingest_bodies([ingest.Body(provider.pk, delete_end(sid)) for sid in gone[:7]])
    assert report.processed == 7


@pytest.mark.parametrize("mode", ["unsplit", "split"])
def test_thirty_percent_withheld_shows_seventy_thirty(fake_openstack, provider, mode):
    first = full_sync(provider, mode=mode)
    assert first.status == RunStatus.SUCCEEDED
    assert first.events_applied is None and first.event_coverage is None  # nothing before it
    withhold_three_of_ten(fake_openstack, provider)
    second = full_sync(provider, mode=mode)
    assert second.status == RunStatus.SUCCEEDED, second.error
    second.refresh_from_db()
    assert (second.events_applied, second.drift_healed) == (7, 3)
    assert second.event_coverage == pytest.approx(0.7)
    assert second.coverage_since == first.started_at
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 10


def test_a_no_change_re_sync_after_events_only_is_full_coverage(fake_openstack, provider):
    full_sync(provider)
    gone = sorted(fake_openstack.data.servers.records)[:4]
    for server_id in gone:
        fake_openstack.data.delete_server(server_id)
    ingest.ingest_bodies([ingest.Body(provider.pk, delete_end(sid)) for sid in gone])
    second = full_sync(provider)
    assert (second.events_applied, second.drift_healed, second.event_coverage) == (4, 0, 1.0)
    third = full_sync(provider)  # nothing changed since the second began
    assert (third.events_applied, third.drift_healed, third.event_coverage) == (0, 0, None)


def test_changes_before_the_previous_run_and_by_runs_are_not_counted(fake_openstack, provider):
    first_id = sorted(fake_openstack.data.servers.records)[0]
    full_sync(provider)
    before = timezone.now()
    # an event applied before the window of the run after next
    fake_openstack.data.delete_server(first_id)
    ingest.ingest_bodies([ingest.Body(provider.pk, delete_end(first_id))])
    second = full_sync(provider)
    assert second.events_applied == 1
    third = full_sync(provider)
    assert third.events_applied == 0  # the event was before the second run began
    assert coverage.applied_by_events(provider.pk, before, timezone.now()) == 1
    # what a run changed itself is the run's drift, never "by events"
    alive = sorted(sid for sid, rec in fake_openstack.data.servers.records.items()
                   if not rec["_deleted"])
    fake_openstack.data.delete_server(alive[0])
    fourth = full_sync(provider)
    assert (fourth.events_applied, fourth.drift_healed) == (0, 1)
    assert full_sync(provider).events_applied == 0
