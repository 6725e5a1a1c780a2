"""A pushed snapshot that arrives while a sync of its provider runs waits for
that run, however long it lasts, without using up its retry budget."""

from __future__ import annotations

import json

import pytest

from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.ingest import ingest_body, replay
from sync.models import CloudHost, Event, SyncRun
from tests.broker import purge, queued_messages

pytestmark = pytest.mark.django_db


def snapshot(doc_id: str, hosts: list[str]) -> str:
    return json.dumps({"id": doc_id, "snapshot": True, "kinds": ["host"], "objects": [
        {"kind": "host", "id": h, "version": "2024-05-01T10:00:00Z",
         "fields": {"hostname": h, "status": "active"}} for h in hosts]})


def test_a_snapshot_waits_for_the_running_sync_without_spending_retries(settings, provider_factory):
    settings.CLOUDSYNC_RETRY_MAX = 1
    purge()
    provider = provider_factory(cloud_sync_driver="generic")
    running = SyncRun.objects.create(cloudprovider=provider, kind=RunKind.FULL,
                                     status=RunStatus.RUNNING)
    # when it arrives, and is tried again more often than the retry budget allows
    report = ingest_body(provider.pk, snapshot("snap", ["vm-1", "vm-2"]))
    event = Event.objects.get(cloudprovider=provider, key="snap")
    for _ in range(3):
        replay([event.pk])
    # then it is still waiting, no attempt counted, a replay by id queued each time
    event.refresh_from_db()
    assert report.retry == [event.pk]
    assert (event.status, event.attempts) == (Status.QUEUED, 0)
    assert "running sync" in event.error
    replays = [m for m in queued_messages() if m["headers"]["task"] == "sync.tasks.replay"]
    assert len(replays) == 4
    assert SyncRun.objects.filter(kind=RunKind.SNAPSHOT).count() == 0
    # once the run is over, the next try applies it
    running.status = RunStatus.SUCCEEDED
    running.save()
    replay([event.pk])
    event.refresh_from_db()
    assert event.status == Status.PROCESSED, event.error
    assert set(CloudHost.objects.values_list("host_id", flat=True)) == {"vm-1", "vm-2"}
