"""Object history written by apply(): a host's lifecycle through events, full
syncs healing, deleting and resurrecting, replays adding nothing, and one
statement per batch (real Postgres, real openstacksdk against the fake cloud)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync import runs
from sync.apply import apply
from sync.changes import Change, Kind, Op
from sync.choices import SyncRunKindChoices as RunKind
from sync.ingest import Body, ingest_bodies, ingest_body
from sync.models import CloudHost, CloudPort, Event, HistoryEntry
from tests.fake_openstack import FakeOpenStack
from tests.faults.events import nova_stream
from tests.fixtures import load_nova_versioned, with_wire_fields

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"
PORT = "ce531f90-199f-48c0-816c-13e38010b442"  # in every sample's network info
ATTACHED = "88dae9fa-0dc6-49e3-8c29-3abc41e99ac9"  # added by interface_attach
LIFECYCLE = [
    "instance-create-end.json",
    "instance-resize_finish-end.json",  # resize
    "instance-power_off-end.json",
    "instance-interface_attach-end.json",  # IP change: a second port with its address
    "instance-delete-end.json",
]


@pytest.fixture
def openstack(provider_factory):
    return provider_factory(
        cloud_sync_driver="openstack.ocata",
        client_config={
            "auth_url": "http://keystone.invalid:5000/v3",
            "username": "u",
            "password": "p",
            "project_name": "admin",
        },
    )


def message(name: str, n: int, tag: str = "") -> dict:
    return with_wire_fields(
        load_nova_versioned(name),
        message_id=f"msg-{tag}{n}",
        timestamp=f"2012-10-29 13:43:{n:02d}.000000",
    )


def entries(provider, **filters) -> list[tuple]:
    """(event key, kind, external id, action, changed fields) in order applied."""
    qs = HistoryEntry.objects.filter(cloudprovider=provider, **filters).order_by("id")
    keys = dict(Event.objects.filter(cloudprovider=provider).values_list("pk", "key"))
    return [
        (keys.get(e.event_id), e.kind, e.external_id, e.action, sorted(e.changes))
        for e in qs
        if e.kind != "flavor"
    ]


def test_a_host_lifecycle_through_events_is_exactly_its_history(openstack):
    # given a host created, resized, powered off, given a second port, deleted
    for n, name in enumerate(LIFECYCLE):
        assert ingest_body(openstack.pk, message(name, n)).processed == 1
    # then each event left exactly the entries of what it changed
    assert entries(openstack) == [
        (
            "msg-0",
            "host",
            UUID,
            "created",
            [
                "flavor",
                "hostname",
                "hypervisor",
                "image",
                "launched_at",
                "project",
                "status",
                "tags",
            ],
        ),
        ("msg-0", "host_ip", PORT, "created", ["addresses", "host"]),
        ("msg-1", "host", UUID, "updated", ["flavor", "status"]),
        ("msg-2", "host", UUID, "updated", ["status"]),
        ("msg-3", "host_ip", ATTACHED, "created", ["addresses", "host"]),
        ("msg-4", "host", UUID, "deleted", ["deleted_at", "status"]),
        ("msg-4", "host_ip", PORT, "deleted", ["deleted_at"]),
        ("msg-4", "host_ip", ATTACHED, "deleted", ["deleted_at"]),
    ]
    # with the right before → after values and cause details
    host = CloudHost.all_objects.get(cloudprovider=openstack, host_id=UUID)
    by_event = {
        e.event.key: e
        for e in HistoryEntry.objects.filter(kind="host", object_pk=host.pk).select_related("event")
    }
    assert by_event["msg-1"].changes == {
        "flavor": ["a22d5517-147c-4147-a0d1-e698df5cd4e3", "d5a8bb54-365a-45ae-abdb-38d249df7845"],
        "status": ["active", "resized"],
    }
    assert by_event["msg-2"].changes == {"status": ["resized", "stopped"]}
    assert by_event["msg-4"].changes["status"] == ["stopped", "deleted"]
    assert by_event["msg-4"].changes["deleted_at"][0] is None
    off = by_event["msg-2"]
    assert (off.cause, off.event_type, off.occurred_at.isoformat()) == (
        "event",
        "instance.power_off.end",
        "2012-10-29T13:43:02+00:00",
    )
    attached = HistoryEntry.objects.get(kind="host_ip", external_id=ATTACHED, action="created")
    assert attached.changes == {
        "host": [None, UUID],
        "addresses": [[], [["192.168.1.30", 4, "fixed", "00:0c:29:0d:11:74"]]],
    }


def test_replaying_the_same_events_adds_nothing(openstack):
    for n, name in enumerate(LIFECYCLE[:4]):
        ingest_body(openstack.pk, message(name, n))
    before = HistoryEntry.objects.filter(cloudprovider=openstack).count()
    # the same messages again (deduplicated), and the same contents as new messages
    for n, name in enumerate(LIFECYCLE[:4]):
        ingest_body(openstack.pk, message(name, n))
        assert ingest_body(openstack.pk, message(name, n, tag="again-")).processed == 1
    assert HistoryEntry.objects.filter(cloudprovider=openstack).count() == before > 0


def test_history_of_a_1000_event_batch_is_one_statement(openstack):
    # given 1,000 Nova notifications about 200 hosts, queued as one batch
    bodies = [Body(openstack.pk, m.text) for m in nova_stream(1000, 200, tag="bulk")]
    # when the worker ingests them (one apply() call: one flush)
    with CaptureQueriesContext(connection) as queries:
        report = ingest_bodies(bodies)
    assert report.processed == 1000
    # then their history is one statement (a COPY), not one per event or object
    writes = [q["sql"] for q in queries if "sync_historyentry" in q["sql"]
              and not q["sql"].startswith("SELECT")]
    written = HistoryEntry.objects.filter(cloudprovider=openstack).count()
    assert len(writes) == 1 and writes[0].startswith('COPY "sync_historyentry"'), writes
    assert written >= 200
    assert set(
        HistoryEntry.objects.filter(cloudprovider=openstack).values_list("cause", flat=True)
    ) == {"event"}


def test_history_can_be_switched_off(openstack, settings):
    settings.CLOUDSYNC_HISTORY = False
    ingest_body(openstack.pk, message(LIFECYCLE[0], 0))
    assert CloudHost.objects.filter(cloudprovider=openstack).exists()
    assert not HistoryEntry.objects.filter(cloudprovider=openstack).exists()


# -- full syncs against the fake OpenStack ----------------------------------------


@pytest.fixture
def cloud(fake_openstack: FakeOpenStack, provider_factory):
    return provider_factory(
        cloud_sync_driver="openstack.ocata", client_config=fake_openstack.client_config()
    )


def full_sync(provider, kind=RunKind.FULL):
    return runs.execute_run(runs.claim_run(provider, kind).pk)


def test_full_syncs_heal_delete_and_resurrect_with_their_run_as_cause(fake_openstack, cloud):
    fake_openstack.data.add_projects(1)
    fake_openstack.data.add_flavors(1)
    fake_openstack.data.add_image()
    servers = fake_openstack.data.add_servers(3)
    first = full_sync(cloud)
    created = HistoryEntry.objects.filter(run=first)
    assert {(e.kind, e.action) for e in created if e.kind == "host"} == {("host", "created")}
    assert created.filter(kind="host").count() == 3
    assert set(created.values_list("cause", flat=True)) == {"full"}
    # nothing changed: a re-sync records nothing
    assert not HistoryEntry.objects.filter(run=full_sync(cloud)).exists()

    # a missed event: the cloud renamed a server; the next full sync heals it
    drifted = servers[0]
    fake_openstack.data.update_server(drifted["id"], name="renamed")
    old_name = CloudHost.objects.get(host_id=drifted["id"]).hostname
    healing = full_sync(cloud)
    [entry] = HistoryEntry.objects.filter(run=healing)
    assert (entry.kind, entry.external_id, entry.action, entry.cause) == (
        "host",
        drifted["id"],
        "updated",
        "full",
    )
    assert entry.changes == {"hostname": [old_name, "renamed"]}

    # gone from the cloud: the full sync deletes the host and its port
    gone = servers[1]
    port = CloudPort.objects.get(host__host_id=gone["id"])
    fake_openstack.data.delete_server(gone["id"])
    deleting = full_sync(cloud)
    assert sorted(
        (e.kind, e.external_id, e.action) for e in HistoryEntry.objects.filter(run=deleting)
    ) == [("host", gone["id"], "deleted"), ("host_ip", port.port_id, "deleted")]

    # a host deleted by a (wrong) event comes back with the next full listing
    back = servers[2]
    apply(cloud, [Change(Kind.HOST, Op.DELETE, back["id"], {}, "0")])
    restoring = full_sync(cloud)
    restored = HistoryEntry.objects.get(run=restoring, kind="host")
    assert (restored.external_id, restored.action) == (back["id"], "restored")
    assert restored.changes["deleted_at"][1] is None
    assert (
        HistoryEntry.objects.filter(run=restoring, kind="host_ip", action="restored").count() == 1
    )


def test_history_api_filters_by_time_and_cause_and_paginates(openstack, client, django_user_model):
    for n, name in enumerate(LIFECYCLE[:3]):
        ingest_body(openstack.pk, message(name, n))
    host = CloudHost.objects.get(cloudprovider=openstack, host_id=UUID)
    apply(
        openstack,
        [Change(Kind.HOST, Op.UPSERT, UUID, {"hypervisor": "other"}, "9999", "full_sync", "77")],
    )
    user = django_user_model.objects.create_superuser("h", "h@example.com", "pw")
    client.force_login(user)
    url = f"/api/cloud-hosts/{host.pk}/history/"
    page = client.get(url, {"limit": 2}).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    assert page["results"][0]["cause"] == "full" and page["results"][0]["run"] == 77
    events = client.get(url, {"cause": "event"}).json()
    assert [r["event_type"] for r in events["results"]] == [
        "instance.power_off.end",
        "instance.resize_finish.end",
        "instance.create.end",
    ]
    assert events["results"][0]["changes"] == {"status": ["resized", "stopped"]}
    latest = HistoryEntry.objects.filter(object_pk=host.pk, kind="host").order_by("-id")[0]
    assert client.get(url, {"since": latest.applied_at.isoformat()}).json()["count"] == 1
    assert client.get(url, {"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    assert client.get(url, {"since": "nonsense"}).status_code == 400
    # the objects an event changed
    create = Event.objects.get(cloudprovider=openstack, key="msg-0")
    changed = client.get("/api/history/", {"event": create.pk}).json()
    assert {r["kind"] for r in changed["results"]} == {"host", "host_ip", "flavor"}
    # and the admin pages show it
    assert (
        "instance.power_off.end"
        in client.get(f"/admin/sync/cloudhost/{host.pk}/change/").content.decode()
    )
    assert UUID in client.get(f"/admin/sync/event/{create.pk}/change/").content.decode()
    for model in ("cloudflavor", "cloudport", "historyentry", "purgerun"):
        assert client.get(f"/admin/sync/{model}/").status_code == 200
    assert client.get(f"/admin/sync/historyentry/?event={create.pk}").status_code == 200
