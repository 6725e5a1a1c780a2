"""Retention with explicit timestamps: the purge removes exactly what is past
each window, in batches, keeps what is still referenced or open, and dedup
still holds inside the event window (real Postgres)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from sync import retention
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.ingest import ingest_body
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudPort,
    Event,
    HistoryEntry,
    ListingDigest,
    PurgeRun,
    SyncRun,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def ago(days: float):
    return NOW - timedelta(days=days)


def event(provider, key: str, status: str, received: float, processed: float | None = None):
    return Event.objects.create(
        cloudprovider=provider,
        key=key,
        status=status,
        received_at=ago(received),
        processed_at=None if processed is None else ago(processed),
        body={"id": key},
    )


def host(provider, host_id: str, deleted: float | None = None, **kw) -> CloudHost:
    return CloudHost.all_objects.create(
        cloudprovider=provider,
        host_id=host_id,
        source_version="v",
        deleted_at=None if deleted is None else ago(deleted),
        **kw,
    )


def test_the_purge_removes_exactly_what_is_past_each_window(provider_factory):
    p = provider_factory()
    # inbox: processed/ignored 14 days, failed/dead 90 days, open ones never
    gone = [
        event(p, "done-15", Status.PROCESSED, 15, 15),
        event(p, "ignored-20", Status.IGNORED, 20, 20),
        event(p, "failed-91", Status.FAILED, 91, 91),
        event(p, "dead-100", Status.DEAD, 100, 100),
        event(p, "failed-unprocessed", Status.FAILED, 95),
    ]
    kept = [
        event(p, "done-13", Status.PROCESSED, 13, 13),
        event(p, "late-done", Status.PROCESSED, 20, 10),  # processed within the window
        event(p, "failed-89", Status.FAILED, 89, 89),
        event(p, "queued-200", Status.QUEUED, 200),  # still waiting for a retry
        event(p, "queued-dead-era", Status.QUEUED, 400, 399),
    ]
    # history: 365 days
    for days in (366, 364):
        HistoryEntry.objects.create(
            cloudprovider=p,
            kind="host",
            object_pk=1,
            external_id="h",
            applied_at=ago(days),
            action="updated",
            cause="event",
        )
    # plans: 30 days after the run finished
    plans = {}
    for name, finished, status in (
        ("old", 31, RunStatus.NEEDS_APPROVAL),
        ("new", 29, RunStatus.PLANNED),
    ):
        run = SyncRun.objects.create(
            cloudprovider=p, kind=RunKind.DRY_RUN, status=status, plan=[{"x": 1}]
        )
        SyncRun.objects.filter(pk=run.pk).update(finished_at=ago(finished))
        plans[name] = run.pk
    # tombstones: 30 days, referrers first, a referenced one stays
    old_host = host(p, "old", deleted=31)
    port = CloudPort.all_objects.create(
        cloudprovider=p,
        port_id="p-old",
        claimed_host=old_host,
        host=old_host,
        deleted_at=ago(31),
        died_with_host=True,
        source_version="v",
    )
    CloudHostIP.objects.create(host=old_host, address="10.0.0.9")  # a leftover address row
    recent_host = host(p, "recent", deleted=29)
    claimed = host(p, "claimed", deleted=40)
    CloudPort.all_objects.create(
        cloudprovider=p, port_id="p-live", claimed_host=claimed, source_version="v"
    )
    used = CloudFlavor.all_objects.create(cloudprovider=p, flavor_id="used", deleted_at=ago(40))
    host(p, "live", cloudflavor=used)
    unused = CloudFlavor.all_objects.create(cloudprovider=p, flavor_id="unused", deleted_at=ago(40))
    # listing digests (a cache) of a purged row go with it; others stay
    for kind, pk in (("host", old_host.pk), ("flavor", unused.pk), ("host", recent_host.pk)):
        ListingDigest.objects.create(kind=kind, row_id=pk, row_version="1:(0,1)", digest="d")

    run = retention.purge(NOW, batch=2)

    assert set(Event.objects.values_list("key", flat=True)) == {e.key for e in kept}
    assert not Event.objects.filter(pk__in=[e.pk for e in gone]).exists()
    assert list(HistoryEntry.objects.values_list("applied_at", flat=True)) == [ago(364)]
    assert SyncRun.objects.get(pk=plans["old"]).plan is None
    assert SyncRun.objects.get(pk=plans["new"]).plan == [{"x": 1}]
    assert not CloudPort.all_objects.filter(pk=port.pk).exists()
    assert set(CloudHost.all_objects.values_list("host_id", flat=True)) == {
        "recent",
        "claimed",
        "live",
    }
    assert not CloudHostIP.objects.filter(host_id=old_host.pk).exists()
    assert set(CloudFlavor.all_objects.values_list("flavor_id", flat=True)) == {"used"}
    assert not CloudFlavor.all_objects.filter(pk=unused.pk).exists()
    assert recent_host.pk in CloudHost.all_objects.values_list("pk", flat=True)
    assert list(ListingDigest.objects.values_list("kind", "row_id")) == [("host", recent_host.pk)]
    # recorded: what it removed, in batches of at most 2
    assert run.removed == {
        "events": 2,
        "failed_events": 3,
        "history": 1,
        "plans": 1,
        "tombstones": {"host_ip": 1, "host": 1, "flavor": 1, "image": 0, "project": 0},
        # (counted towards the inbox's next index rebuild: test_retention_reindex.py)
        "inbox_reindex": {"purged_since": 5, "rebuilt": False},
    }
    assert run.batches >= 5 and run.finished_at and not run.error
    assert PurgeRun.objects.get() == run
    assert run.settings["CLOUDSYNC_EVENT_RETENTION_DAYS"] == 14
    # a second purge finds nothing more
    again = retention.purge(NOW, batch=2)
    assert (
        again.removed["events"] == again.removed["failed_events"] == again.removed["history"] == 0
    )


def test_no_tombstone_newer_than_the_last_successful_full_listing_is_purged(provider_factory):
    p = provider_factory()
    run = SyncRun.objects.create(cloudprovider=p, kind=RunKind.FULL, status=RunStatus.SUCCEEDED)
    SyncRun.objects.filter(pk=run.pk).update(started_at=ago(40), finished_at=ago(39))
    host(p, "before-listing", deleted=45)
    host(p, "after-listing", deleted=35)  # past 30 days, but deleted after the last listing began
    retention.purge(NOW)
    assert set(CloudHost.all_objects.values_list("host_id", flat=True)) == {"after-listing"}


def test_a_duplicate_inside_the_window_is_still_deduplicated(provider):
    # given two messages processed 15 and 13 days ago, and a purge
    for key in ("m-15", "m-13"):
        assert (
            ingest_body(provider.pk, json.dumps({"message_id": key, "event_type": "demo"})).events
            == 1
        )
    Event.objects.filter(key="m-15").update(received_at=ago(15), processed_at=ago(15))
    Event.objects.filter(key="m-13").update(received_at=ago(13), processed_at=ago(13))
    retention.purge()
    assert list(Event.objects.values_list("key", flat=True)) == ["m-13"]
    # when both arrive again
    inside = ingest_body(provider.pk, json.dumps({"message_id": "m-13", "event_type": "demo"}))
    outside = ingest_body(provider.pk, json.dumps({"message_id": "m-15", "event_type": "demo"}))
    # then the one inside the window is a duplicate; the purged one is new
    assert (inside.duplicates, inside.processed) == (1, 0)
    assert (outside.duplicates, outside.processed) == (0, 1)


def test_retention_api_shows_settings_and_the_last_purge(client, django_user_model, provider):
    event(provider, "old", Status.PROCESSED, 20, 20)
    run = retention.purge(NOW)
    client.force_login(django_user_model.objects.create_superuser("r", "r@example.com", "pw"))
    data = client.get("/api/purge-runs/retention/").json()
    assert data["settings"]["CLOUDSYNC_TOMBSTONE_RETENTION_DAYS"] == 30
    assert data["last_purge"]["id"] == run.pk and data["last_purge"]["removed"]["events"] == 1
    assert "45 3" in data["schedule"]
    page = client.get("/admin/sync/purgerun/").content.decode()
    assert "CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS" in page


def test_a_candidate_the_recheck_keeps_does_not_end_the_category(provider):
    # given five old tombstones, the first of which changes between being
    # picked and the batch's re-check (modelled by a re-check that excludes it)
    rows = [host(provider, f"t-{i}", deleted=60) for i in range(5)]
    old = CloudHost.all_objects.filter(cloudprovider=provider, deleted_at__lt=ago(30))
    locked: list[list[int]] = []
    batches = retention._Batches(2)
    # when they are deleted in batches of two (the tombstone path: ``before`` runs)
    removed = batches.delete(old, old.exclude(pk=rows[0].pk), before=locked.append)
    # then every other one is deleted (the dropped candidate ended nothing early)
    assert removed == 4
    assert list(CloudHost.all_objects.values_list("host_id", flat=True)) == ["t-0"]
    assert all(pks == sorted(pks) for pks in locked)  # locked in pk order
