"""Split full syncs under faults (scenarios from a review): lost listed ids,
database errors outside the listing, and the deletion cutoff."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from sync import runs
from sync.apply import apply
from sync.changes import Change, Kind, Op, make_version
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import TemporaryError
from sync.models import SyncRun
from tests.inventory import inventory_of
from tests.sync.test_full_sync import full_sync, hosts, midway, seed

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

TOKEN = runs.SPLIT + "safety"


@pytest.fixture
def provider(fake_openstack, provider_factory):
    return provider_factory(cloud_sync_driver="openstack.ocata",
                            client_config=fake_openstack.client_config())


def split_run(provider) -> SyncRun:
    run = runs.claim_run(provider, RunKind.FULL)
    SyncRun.objects.filter(pk=run.pk).update(worker=TOKEN, heartbeat_at=timezone.now())
    return run


def test_listed_ids_that_went_missing_fail_the_run_and_delete_nothing(fake_openstack, provider):
    # given a synced cloud that does not change
    seed(fake_openstack, 5)
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    before = inventory_of(provider)
    # when the ids the catalog part recorded are gone before the finish (as
    # crash recovery would leave an unlogged table)
    run = split_run(provider)
    outcomes = [runs.execute_part(run.pk, "catalog", TOKEN)]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM sync_listedid")
    outcomes += [runs.execute_part(run.pk, p, TOKEN) for p in ("servers", "ips")]
    done = runs.finish_split(run.pk, TOKEN, outcomes)
    # then the run fails saying so, and nothing that exists was deleted
    assert done.status == RunStatus.FAILED
    assert "are recorded; nothing deleted" in done.error
    assert inventory_of(provider) == before


def test_a_database_error_in_a_part_outside_its_listing_is_temporary(
        fake_openstack, provider, monkeypatch):
    seed(fake_openstack, 3)
    run = split_run(provider)

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runs, "_claim_part", lost)
    # (the task retries a TemporaryError; anything else would fail the whole chord)
    with pytest.raises(TemporaryError):
        runs.execute_part(run.pk, "servers", TOKEN)


def test_a_database_error_recording_the_finish_is_temporary(fake_openstack, provider, monkeypatch):
    seed(fake_openstack, 3)
    run = split_run(provider)
    outcomes = [runs.execute_part(run.pk, p, TOKEN) for p in ("catalog", "servers", "ips")]

    def lost(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(runs, "_finish_listing", lost)
    with pytest.raises(TemporaryError):  # retried by the task, instead of a run left running
        runs.finish_split(run.pk, TOKEN, outcomes)


@pytest.mark.parametrize("mode", ["unsplit", "split"])
def test_a_host_created_by_an_event_during_the_listing_is_kept(fake_openstack, provider, mode,
                                                               monkeypatch):
    # an event stamped when it happened (during the listing): only the
    # deletion cutoff, the listing's (earliest part's) start, protects it
    seed(fake_openstack, 6)
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED

    def event() -> None:
        at = timezone.now()
        apply(provider, [Change(Kind.HOST, Op.UPSERT, "created-during-listing",
                                {"hostname": "new"}, make_version(at, at))])

    midway(monkeypatch, event)
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "created-during-listing" in hosts(provider)
