"""apply(): the rules of DESIGN §5 on real database rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.apply import apply
from sync.changes import Change, Kind, Op, Source, make_version
from sync.models import CloudFlavor, CloudHost, CloudHostIP, CloudImage, CloudPort, CloudProject

pytestmark = pytest.mark.django_db


def v(n: int) -> str:
    return make_version(n)


def host(ext="vm-1", version=1, op=Op.UPSERT, source=Source.EVENT, **fields) -> Change:
    return Change(Kind.HOST, op, ext, fields, v(version), source, f"ref-{version}")


def test_create_then_partial_update_keeps_other_fields(provider):
    # given
    result = apply(provider, [host(hostname="web-1", status="building", hypervisor="cmp-1")])
    assert result.counts["host"]["created"] == 1
    # when
    result = apply(provider, [host(version=2, status="active")])
    # then
    row = CloudHost.objects.get(cloudprovider=provider, host_id="vm-1")
    assert (row.hostname, row.status, row.hypervisor) == ("web-1", "active", "cmp-1")
    assert row.source_version == v(2)
    assert row.last_synced_by == "event:ref-2"
    assert result.counts["host"]["updated"] == 1


def test_same_change_twice_is_unchanged(provider):
    change = host(hostname="web-1", status="active")
    apply(provider, [change])
    result = apply(provider, [change])
    assert dict(result.counts["host"]) == {"unchanged": 1}
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 1


def test_stale_update_does_not_overwrite_but_fills_empty_fields(provider):
    apply(provider, [host(version=5, status="stopped")])
    result = apply(provider, [host(version=3, status="active", hostname="web-1")])
    row = CloudHost.objects.get(host_id="vm-1")
    assert row.status == "stopped"  # newer state kept
    assert row.hostname == "web-1"  # empty field filled
    assert row.source_version == v(5)
    assert result.counts["host"]["updated"] == 1
    result = apply(provider, [host(version=2, status="error")])
    assert dict(result.counts["host"]) == {"stale": 1}
    assert CloudHost.objects.get(host_id="vm-1").status == "stopped"


def test_delete_then_late_update_never_resurrects(provider):
    apply(provider, [host(version=1, hostname="web-1", status="active")])
    result = apply(provider, [host(version=4, op=Op.DELETE)])
    assert result.counts["host"]["deleted"] == 1
    assert not CloudHost.objects.filter(host_id="vm-1").exists()  # default manager hides it
    tomb = CloudHost.all_objects.get(host_id="vm-1")
    assert tomb.deleted_at is not None and tomb.status == "deleted"
    # a late update, older or even newer, from an event: still deleted
    for version in (3, 9):
        result = apply(provider, [host(version=version, status="active")])
        assert dict(result.counts["host"]) == {"stale": 1}
    assert not CloudHost.objects.filter(host_id="vm-1").exists()


def test_delete_of_unknown_object_leaves_a_tombstone(provider):
    apply(provider, [host(version=5, op=Op.DELETE)])
    apply(provider, [host(version=1, hostname="late-create")])
    assert not CloudHost.objects.filter(host_id="vm-1").exists()
    tomb = CloudHost.all_objects.get(host_id="vm-1")
    assert tomb.deleted_at is not None and tomb.status == "deleted"
    assert tomb.source_version == v(5)


def test_only_a_newer_full_sync_clears_a_tombstone(provider):
    apply(provider, [host(version=4, op=Op.DELETE)])
    apply(provider, [host(version=3, source=Source.FULL_SYNC, hostname="old-listing")])
    assert not CloudHost.objects.filter(host_id="vm-1").exists()
    result = apply(provider, [host(version=6, source=Source.FULL_SYNC, hostname="back")])
    assert result.counts["host"]["created"] == 1
    assert CloudHost.objects.get(host_id="vm-1").hostname == "back"


def test_references_become_placeholders_then_get_filled(provider):
    apply(provider, [host(flavor="m1.small", image="img-1", project="p-1")])
    row = CloudHost.objects.select_related("cloudflavor", "image", "project").get(host_id="vm-1")
    assert row.cloudflavor.flavor_id == "m1.small" and row.cloudflavor.is_placeholder
    assert row.image.image_id == "img-1" and row.image_ref == "img-1"
    assert row.project.project_id == "p-1"
    result = apply(
        provider,
        [Change(Kind.FLAVOR, Op.UPSERT, "m1.small", {"name": "m1.small", "cores": 1, "memory": 2048, "disk": 20}, v(1))],
    )
    assert result.counts["flavor"]["created"] == 1  # first real data about it
    flavor = CloudFlavor.objects.get(flavor_id="m1.small")
    assert (flavor.cores, flavor.memory, flavor.disk) == (1, 2048, 20)
    assert CloudImage.objects.filter(image_id="img-1").count() == 1
    assert CloudProject.objects.filter(project_id="p-1").count() == 1


def test_objects_are_per_provider(provider_factory):
    a, b = provider_factory(), provider_factory()
    apply(a, [host(hostname="in-a")])
    apply(b, [host(hostname="in-b")])
    apply(b, [host(version=2, op=Op.DELETE)])
    assert CloudHost.objects.get(cloudprovider=a).hostname == "in-a"
    assert not CloudHost.objects.filter(cloudprovider=b).exists()


def test_host_addresses_replace_the_host_level_set(provider):
    apply(provider, [host(addresses=[{"address": "10.0.0.5", "mac": "FA:16:3E:00:00:01"}, "2001:db8::5"])])
    assert sorted(CloudHostIP.objects.values_list("address", "version", "kind", "mac")) == [
        ("10.0.0.5", 4, "fixed", "fa:16:3e:00:00:01"),
        ("2001:db8::5", 6, "fixed", ""),
    ]
    apply(provider, [host(version=2, addresses=[{"address": "10.0.0.6"}, {"address": "not-an-ip"}])])
    assert list(CloudHostIP.objects.values_list("address", flat=True)) == ["10.0.0.6"]
    apply(provider, [host(version=3, op=Op.DELETE)])
    assert not CloudHostIP.objects.exists()


def port(ext, version, op=Op.UPSERT, **fields) -> Change:
    return Change(Kind.HOST_IP, op, ext, fields, v(version))


def test_ports_and_floating_ips_follow_their_host(provider):
    # floating IP first, bound to a port nobody knows yet
    apply(provider, [port("fip:1", 1, host=None, port_id="port-a",
                          addresses=[{"address": "203.0.113.7", "kind": "floating"}])])
    assert CloudHostIP.objects.get(address="203.0.113.7").host is None
    # the port arrives: both addresses now belong to vm-1
    apply(provider, [port("port-a", 1, host="vm-1", port_id="port-a",
                          addresses=[{"address": "10.0.0.5", "kind": "fixed"}])])
    vm = CloudHost.all_objects.get(host_id="vm-1")
    assert sorted(vm.ips.values_list("address", "kind")) == [
        ("10.0.0.5", "fixed"), ("203.0.113.7", "floating")]
    # disassociate the floating IP
    apply(provider, [port("fip:1", 2, host=None, port_id=None, addresses=[])])
    assert list(vm.ips.values_list("address", flat=True)) == ["10.0.0.5"]
    # port deleted: its addresses go, the tombstone stays
    apply(provider, [port("port-a", 3, op=Op.DELETE)])
    assert not vm.ips.exists()
    assert CloudPort.all_objects.get(port_id="port-a").deleted_at is not None


def test_dry_diffs_are_recorded_field_by_field(provider):
    apply(provider, [host(hostname="a", status="active")])
    result = apply(provider, [host(version=2, hostname="b", status="active")], record_diffs=True)
    assert result.diffs == {"host": {"vm-1": {"hostname": ["a", "b"]}}}


def test_invalid_change_fields_are_rejected():
    with pytest.raises(ValueError, match="unknown host field"):
        Change(Kind.HOST, Op.UPSERT, "x", {"colour": "red"})
    with pytest.raises(ValueError, match="non-empty external id"):
        Change(Kind.HOST, Op.UPSERT, " ")


def test_deleting_a_host_takes_its_ports_addresses(provider):
    apply(provider, [port("eni-1", 1, host="vm-1", port_id="eni-1", addresses=[{"address": "10.0.0.9"}]),
                     port("fip:9", 1, host=None, port_id="eni-1",
                          addresses=[{"address": "198.51.100.9", "kind": "floating"}])])
    assert CloudHostIP.objects.filter(host__host_id="vm-1").count() == 2
    apply(provider, [host(version=2, op=Op.DELETE)])
    assert not CloudHostIP.objects.filter(address="10.0.0.9").exists()
    assert CloudPort.all_objects.get(port_id="eni-1").deleted_at is not None
    fip = CloudPort.objects.get(port_id="fip:9")  # the floating IP still exists, unattached
    assert fip.host is None
    assert list(fip.ips.values_list("address", "host")) == [("198.51.100.9", None)]


def test_a_complete_port_set_detaches_ports_it_no_longer_names(provider):
    apply(provider, [port("p1", 1, host="vm-1", port_id="p1", addresses=[{"address": "10.0.0.1"}]),
                     port("p2", 1, host="vm-1", port_id="p2", addresses=[{"address": "10.0.0.2"}]),
                     port("fip:1", 1, port_id="p2", addresses=[{"address": "203.0.113.2", "kind": "floating"}])])
    vm = CloudHost.all_objects.get(host_id="vm-1")
    assert sorted(vm.ips.values_list("address", flat=True)) == ["10.0.0.1", "10.0.0.2", "203.0.113.2"]
    # an older complete set does not undo a newer attachment
    apply(provider, [host(version=0, port_ids=["p1"])])
    assert vm.ips.count() == 3
    # interface_detach: the host now names only p1
    result = apply(provider, [host(version=2, port_ids=["p1"])], record_diffs=True)
    assert result.diffs["host"]["vm-1"]["port_ids"] == [["p1", "p2"], ["p1"]]
    assert list(vm.ips.values_list("address", flat=True)) == ["10.0.0.1"]
    assert CloudPort.objects.get(port_id="p2").host is None
    assert CloudPort.objects.get(port_id="fip:1").host is None
    # the same set again changes nothing
    assert dict(apply(provider, [host(version=2, port_ids=["p1"])]).counts["host"]) == {"unchanged": 1}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite inserts placeholders first")
def test_a_new_object_is_written_once_with_its_values(provider):
    # given hosts, a port and a tombstone nobody has seen yet
    changes = [
        host(f"vm-{n}", hostname=f"web-{n}", status="active", flavor="m1") for n in range(3)
    ] + [
        host("vm-gone", op=Op.DELETE),
        Change(Kind.HOST_IP, Op.UPSERT, "port-1", {"host": "vm-0", "addresses": ["10.0.0.5"]},
               v(1), Source.EVENT, "ref-1"),
    ]
    # when one apply creates them
    with CaptureQueriesContext(connection) as queries:
        result = apply(provider, changes)
    # then each new host and port row is written once (COPY), never a placeholder updated after
    sql = [q["sql"] for q in queries]
    for table in ("sync_cloudhost", "sync_cloudport"):
        assert [s for s in sql if s.startswith(f'COPY "{table}"')] != [], table
        assert [s for s in sql if f'INSERT INTO "{table}"' in s] == [], table
        assert [s for s in sql if f'UPDATE "{table}"' in s] == [], table
    assert dict(result.counts["host"]) == {"created": 3, "deleted": 1}
    rows = {h.host_id: h for h in CloudHost.all_objects.filter(cloudprovider=provider)}
    assert {ext: (h.hostname, h.status, h.cloudflavor.flavor_id) for ext, h in rows.items()
            if ext != "vm-gone"} == {f"vm-{n}": (f"web-{n}", "active", "m1") for n in range(3)}
    assert rows["vm-0"].last_seen_at is not None and rows["vm-0"].last_event_at is not None
    assert rows["vm-0"].field_versions["hostname"] == v(1)
    assert rows["vm-gone"].deleted_at is not None and rows["vm-gone"].source_version == v(1)
    port = CloudPort.objects.get(cloudprovider=provider, port_id="port-1")
    assert port.host_id == rows["vm-0"].pk
    assert list(CloudHostIP.objects.filter(port=port).values_list("address", "host_id")) == [
        ("10.0.0.5", rows["vm-0"].pk)]
