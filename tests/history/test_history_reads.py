"""History by external id (``/api/history/?external_id=``): entries are not
indexed by external id; the object is found by its row, or by its "deleted"
entry once the tombstone is purged (sync.history_reads). The answer must be
exactly the entries that name the id, whatever happened to the object."""

from __future__ import annotations

import pytest

from sync.apply import apply
from sync.changes import Change, Kind, Op
from sync.models import CloudHost, CloudProject, HistoryEntry
from sync.models.history import DELETING

pytestmark = pytest.mark.django_db

VM = "vm-a"


def host(provider, version: str, **fields) -> None:
    apply(provider, [Change(Kind.HOST, Op.UPSERT, VM, fields, version, "full_sync", "1")])


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("r", "r@example.com", "pw"))
    return client


def ids(client, **params) -> list[int]:
    page = client.get("/api/history/", {"external_id": VM, "limit": 100} | params)
    assert page.status_code == 200, page.content
    return sorted(r["id"] for r in page.json()["results"])


def truth(**filters) -> list[int]:
    """What a scan of the whole table says."""
    return sorted(HistoryEntry.objects.filter(external_id=VM, **filters).values_list("pk", flat=True))


def test_an_objects_history_by_external_id_through_its_life_and_purge(
    admin_client, provider_factory
):
    one, other = provider_factory(), provider_factory()
    # a host created, changed, deleted, its tombstone purged; then one of
    # the same id created again (a new row)
    host(one, "1", hostname="first", status="active")
    host(one, "2", status="stopped")
    apply(one, [Change(Kind.HOST, Op.DELETE, VM, {}, "3")])
    first = CloudHost.all_objects.get(cloudprovider=one, host_id=VM)
    assert first.deleted_at is not None
    # (a plain create or update is not a "deleting" entry: the partial index stays small)
    made = HistoryEntry.objects.filter(object_pk=first.pk).exclude(action="deleted")
    assert made.count() == 2 and not made.filter(DELETING).exists()
    alive = ids(admin_client)
    assert alive == truth() and len(alive) == 3  # created, updated, deleted (a tombstone)
    CloudHost.all_objects.filter(pk=first.pk).delete()  # the tombstone purge
    assert ids(admin_client) == alive  # found through its "deleted" entry
    host(one, "4", hostname="second")
    # the same id elsewhere: another provider's host, and a project of this one
    host(other, "1", hostname="elsewhere")
    apply(one, [Change(Kind.PROJECT, Op.UPSERT, VM, {"name": "p"}, "1", "full_sync", "1")])
    assert CloudProject.objects.filter(project_id=VM).exists()
    everything = ids(admin_client)
    assert everything == truth() and len(everything) == 6
    assert ids(admin_client, provider=one.pk) == truth(cloudprovider=one)
    assert ids(admin_client, kind="project") == truth(kind="project") != []
    assert ids(admin_client, action="deleted") == truth(action="deleted") != []
    # an id nothing has
    assert admin_client.get("/api/history/", {"external_id": "nothing"}).json()["results"] == []


def test_entries_of_other_objects_are_not_returned(admin_client, provider_factory):
    provider = provider_factory()
    host(provider, "1", hostname="a")
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-b", {"hostname": "b"}, "1", "full_sync", "1")])
    assert ids(admin_client) == truth() and len(truth()) == 1
    assert set(HistoryEntry.objects.values_list("external_id", flat=True)) == {VM, "vm-b"}


def test_a_port_hidden_with_its_host_is_found_after_its_purge(admin_client, provider_factory):
    """A port that arrives for a host already deleted is hidden at once: its
    only entry is "created" (with a ``deleted_at`` change), not "deleted"."""
    from sync.models import CloudPort

    provider = provider_factory()
    host(provider, "1", hostname="gone")
    apply(provider, [Change(Kind.HOST, Op.DELETE, VM, {}, "2")])
    port = "port-late"
    apply(provider, [Change(Kind.HOST_IP, Op.UPSERT, port,
                            {"host": VM, "addresses": ["10.0.0.5"]},
                            "3", "full_sync", "1")])  # fmt: skip
    row = CloudPort.all_objects.get(cloudprovider=provider, port_id=port)
    assert row.deleted_at is not None
    entries = HistoryEntry.objects.filter(kind="host_ip", external_id=port)
    assert [e.action for e in entries] == ["created"] and "deleted_at" in entries[0].changes
    before = ids(admin_client, external_id=port)
    assert before == truth_of(port) != []
    CloudPort.all_objects.filter(pk=row.pk).delete()  # the tombstone purge
    assert ids(admin_client, external_id=port) == before


def truth_of(external_id: str) -> list[int]:
    return sorted(
        HistoryEntry.objects.filter(external_id=external_id).values_list("pk", flat=True)
    )
