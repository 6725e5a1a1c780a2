"""The generic driver end to end: POST -> 202 -> Redis -> real worker -> database.

Changes documents are applied like events; invalid documents fail in the
inbox with the schema's message; snapshot documents are reconciled as a
SyncRun of kind *snapshot*, deleting what they omit, under the mass-delete
guard."""

from __future__ import annotations

import pytest

from sync.choices import EventStatusChoices as Status
from sync.choices import HostStatusChoices
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudFlavor, CloudHost, Event, SyncRun
from sync.runs import apply_stored_plan
from tests.e2e.conftest import done, post

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def generic(settings, provider_factory):
    settings.CLOUDSYNC_MASS_DELETE_RATIO = 0.2
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 5
    return provider_factory(cloud_sync_driver="generic")




def host_change(i: int, version: str = "2024-05-01T10:00:00Z", **fields) -> dict:
    fields = {"hostname": f"vm-{i}.example", "status": "active", **fields}
    return {"kind": "host", "op": "upsert", "id": f"vm-{i}", "version": version, "fields": fields}


def seed_hosts(client, provider, count: int) -> None:
    post(client, provider, {"id": "seed", "changes": [host_change(i) for i in range(count)]})
    assert done(provider, "seed").status == Status.PROCESSED
    assert CloudHost.objects.filter(cloudprovider=provider).count() == count


def test_changes_create_hosts_and_flavors_in_version_order(client, generic, celery_worker):
    post(
        client,
        generic,
        {
            "id": "doc-1",
            "changes": [
                {
                    "kind": "flavor",
                    "op": "upsert",
                    "id": "m1.small",
                    "version": "2024-04-01T00:00:00Z",
                    "fields": {"name": "m1.small", "cores": 2, "memory": 2048, "disk": 20},
                },
                host_change(
                    1,
                    version="2024-05-01T10:00:00Z",
                    flavor="m1.small",
                    addresses=[
                        {"address": "10.0.0.5", "kind": "fixed", "mac": "FA:16:3E:00:00:01"},
                        {"address": "203.0.113.9", "kind": "floating"},
                    ],
                ),
            ],
        },
    )
    event = done(generic, "doc-1")
    assert event.status == Status.PROCESSED, event.error
    assert event.event_type == "generic.changes"
    host = CloudHost.objects.get(cloudprovider=generic, host_id="vm-1")
    assert host.hostname == "vm-1.example" and host.status == HostStatusChoices.ACTIVE
    assert host.cloudflavor == CloudFlavor.objects.get(cloudprovider=generic, flavor_id="m1.small")
    assert (host.cloudflavor.cores, host.cloudflavor.memory, host.cloudflavor.disk) == (2, 2048, 20)
    assert sorted(host.ips.values_list("address", "version", "kind", "mac")) == [
        ("10.0.0.5", 4, "fixed", "fa:16:3e:00:00:01"),
        ("203.0.113.9", 4, "floating", ""),
    ]

    # a late, older document does not overwrite what a newer one set
    post(
        client,
        generic,
        {"id": "doc-3", "changes": [host_change(1, "2024-05-03T00:00:00Z", hostname="newest")]},
    )
    assert done(generic, "doc-3").status == Status.PROCESSED
    post(
        client,
        generic,
        {"id": "doc-2", "changes": [host_change(1, "2024-05-02T00:00:00Z", hostname="older")]},
    )
    assert done(generic, "doc-2").status == Status.PROCESSED
    assert CloudHost.objects.get(cloudprovider=generic, host_id="vm-1").hostname == "newest"

    # a delete is a tombstone; the same document again is a duplicate, not a second event
    delete = {
        "id": "doc-4",
        "changes": [
            {"kind": "host", "op": "delete", "id": "vm-1", "version": "2024-05-04T00:00:00Z"}
        ],
    }
    post(client, generic, delete)
    assert done(generic, "doc-4").status == Status.PROCESSED
    post(client, generic, delete)
    tomb = CloudHost.all_objects.get(cloudprovider=generic, host_id="vm-1")
    assert tomb.deleted_at is not None and tomb.status == HostStatusChoices.DELETED
    assert not CloudHost.objects.filter(cloudprovider=generic, host_id="vm-1").exists()
    assert Event.objects.filter(cloudprovider=generic, key="doc-4").count() == 1


def test_invalid_document_fails_in_the_inbox_with_the_schema_message(
    client, generic, celery_worker
):
    post(
        client,
        generic,
        [
            {
                "id": "bad",
                "changes": [
                    {
                        "kind": "flavor",
                        "op": "upsert",
                        "id": "f1",
                        "version": 1,
                        "fields": {"cores": "four"},
                    }
                ],
            },
            {
                "id": "good",
                "changes": [
                    {
                        "kind": "flavor",
                        "op": "upsert",
                        "id": "f2",
                        "version": 1,
                        "fields": {"cores": 4},
                    }
                ],
            },
        ],
    )
    bad = done(generic, "bad")
    assert bad.status == Status.FAILED
    assert bad.error == (
        "bad payload: invalid generic document: $.changes[0].fields.cores: 'four' is not of type 'integer', 'null'"
    )
    assert bad.attempts <= 1  # not retried
    assert done(generic, "good").status == Status.PROCESSED
    assert not CloudFlavor.objects.filter(cloudprovider=generic, flavor_id="f1").exists()
    assert CloudFlavor.objects.get(cloudprovider=generic, flavor_id="f2").cores == 4


def test_snapshot_deletes_what_it_omits_and_records_a_snapshot_run(client, generic, celery_worker):
    seed_hosts(client, generic, 5)
    post(
        client,
        generic,
        {
            "id": "snap-1",
            "snapshot": True,
            "kinds": ["host"],
            # vm-0..vm-3 as they are, vm-4 omitted, vm-9 new (an event missed it)
            "objects": [
                {k: v for k, v in host_change(i).items() if k != "op"} for i in (0, 1, 2, 3, 9)
            ],
        },
    )
    event = done(generic, "snap-1")
    assert event.status == Status.PROCESSED, event.error
    assert event.event_type == "generic.snapshot"
    run = SyncRun.objects.get(cloudprovider=generic)
    assert (run.kind, run.status) == (RunKind.SNAPSHOT, RunStatus.SUCCEEDED)
    assert run.drift_healed == 2  # vm-9 created, vm-4 deleted
    assert event.result == {"sync_run": run.pk, "status": RunStatus.SUCCEEDED, "drift_healed": 2}
    alive = set(CloudHost.objects.filter(cloudprovider=generic).values_list("host_id", flat=True))
    assert alive == {"vm-0", "vm-1", "vm-2", "vm-3", "vm-9"}
    tomb = CloudHost.all_objects.get(cloudprovider=generic, host_id="vm-4")
    assert tomb.deleted_at is not None and tomb.status == HostStatusChoices.DELETED


def test_snapshot_over_the_mass_delete_guard_needs_approval(client, generic, celery_worker):
    seed_hosts(client, generic, 10)
    post(
        client,
        generic,
        {
            "id": "snap-big",
            "snapshot": True,
            "kinds": ["host"],
            "objects": [{k: v for k, v in host_change(i).items() if k != "op"} for i in (0, 1)],
        },
    )
    event = done(generic, "snap-big")
    assert event.status == Status.PROCESSED, event.error
    run = SyncRun.objects.get(cloudprovider=generic, kind=RunKind.SNAPSHOT)
    assert run.status == RunStatus.NEEDS_APPROVAL
    assert "8 of 10 hosts" in run.error
    assert CloudHost.objects.filter(cloudprovider=generic).count() == 10  # nothing deleted
    assert sorted(item["external_id"] for item in run.plan if item["op"] == "delete") == [
        f"vm-{i}" for i in range(2, 10)
    ]
    # an operator approves: the stored plan deletes exactly those
    apply_stored_plan(run.pk, triggered_by="test")
    alive = set(CloudHost.objects.filter(cloudprovider=generic).values_list("host_id", flat=True))
    assert alive == {"vm-0", "vm-1"}
