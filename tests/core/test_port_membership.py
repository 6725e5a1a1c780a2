"""Port membership is a register: which host a port (and a floating IP bound
to it) is on follows the newest statement, in every arrival order.

Statements are a port's own change (``host``) and a host's complete port list
(``port_ids``); each scenario below is applied in every order of its changes
and must always end in the state the in-order stream describes."""

from __future__ import annotations

from itertools import permutations

import pytest

from sync.apply import apply
from sync.changes import Change, Kind, Op, Source, make_version
from sync.models import CloudHost, CloudHostIP, CloudPort, CloudProvider

pytestmark = pytest.mark.django_db


def host_list(version: int, ports: list[str], host: str = "vm-1") -> Change:
    return Change(Kind.HOST, Op.UPSERT, host, {"port_ids": ports}, make_version(version))


def port(version: int, host: str | None, ext: str = "p1", address: str = "10.0.0.1") -> Change:
    fields = {"host": host, "port_id": ext, "addresses": [{"address": address}]}
    return Change(Kind.HOST_IP, Op.UPSERT, ext, fields, make_version(version))


def fip(version: int, parent: str | None, ext: str = "fip:1") -> Change:
    addresses = [{"address": "203.0.113.1", "kind": "floating"}] if parent else []
    fields = {"host": None, "port_id": parent, "addresses": addresses}
    return Change(Kind.HOST_IP, Op.UPSERT, ext, fields, make_version(version))


def delete(kind: Kind, ext: str, version: int) -> Change:
    return Change(kind, Op.DELETE, ext, {}, make_version(version))


def where(provider: CloudProvider) -> dict[str, tuple]:
    """port id -> (alive, host id, addresses shown with their host)."""
    out = {}
    for row in CloudPort.all_objects.filter(cloudprovider=provider).select_related("host"):
        ips = sorted(CloudHostIP.objects.filter(port=row).values_list("address", "host__host_id"))
        out[row.port_id] = (row.deleted_at is None, row.host.host_id if row.host else None, ips)
    return out


def every_order(changes: list[Change], name: str) -> list[dict[str, tuple]]:
    """The state after each order of the changes, one change per apply, and
    once more all together in one batch."""
    results = []
    for n, order in enumerate([*permutations(changes), None]):
        provider = CloudProvider.objects.create(name=f"{name}-{n}")
        if order is None:
            apply(provider, changes)
        else:
            for change in order:
                apply(provider, [change])
        results.append(where(provider))
    return results


def test_a_newer_list_adds_back_a_port_an_older_list_removed():
    # create.end lists p1, update lists nothing, power_off.end lists p1 again
    changes = [host_list(1, ["p1"]), port(1, "vm-1"), host_list(2, []), host_list(3, ["p1"])]
    for state in every_order(changes, "adds-back"):
        assert state["p1"] == (True, "vm-1", [("10.0.0.1", "vm-1")])


def test_an_older_list_never_removes_a_port_a_newer_list_names():
    changes = [host_list(3, ["p1"]), host_list(2, []), port(1, "vm-1")]
    for state in every_order(changes, "older-list"):
        assert state["p1"] == (True, "vm-1", [("10.0.0.1", "vm-1")])


def test_the_newest_list_without_the_port_detaches_it():
    changes = [port(1, "vm-1"), host_list(1, ["p1"]), host_list(3, []), host_list(2, ["p1"])]
    for state in every_order(changes, "detach"):
        assert state["p1"] == (True, None, [("10.0.0.1", None)])


def test_port_events_interleave_with_host_lists():
    # Neutron detaches at 2, the host still names nothing at 3, Neutron attaches at 4
    changes = [host_list(1, ["p1"]), port(2, None), host_list(3, []), port(4, "vm-1", address="10.0.0.4")]
    for state in every_order(changes, "interleave"):
        assert state["p1"] == (True, "vm-1", [("10.0.0.4", "vm-1")])
    # without the attach at 4, the port is off the host in every order
    for state in every_order(changes[:3], "interleave-detached"):
        assert state["p1"] == (True, None, [("10.0.0.1", None)])


def test_a_port_moved_to_another_host_is_not_detached_by_the_old_hosts_list():
    changes = [host_list(1, ["p1"], "vm-a"), port(2, "vm-b"), host_list(3, [], "vm-a")]
    for state in every_order(changes, "moved"):
        assert state["p1"] == (True, "vm-b", [("10.0.0.1", "vm-b")])
    # ...but vm-b's own newer list without it does
    for state in every_order([*changes, host_list(4, [], "vm-b")], "moved-off"):
        assert state["p1"] == (True, None, [("10.0.0.1", None)])


def test_a_floating_ip_follows_its_port_through_lists_and_deletes():
    changes = [fip(1, "p1"), port(2, "vm-1"), host_list(3, ["p1"], "vm-2")]
    for state in every_order(changes, "fip"):
        assert state["fip:1"] == (True, "vm-2", [("203.0.113.1", "vm-2")])
    # the port's own delete leaves the floating IP alive but unattached
    for state in every_order([*changes, delete(Kind.HOST_IP, "p1", 4)], "fip-port-gone"):
        assert state["p1"] == (False, "vm-2", [])
        assert state["fip:1"] == (True, None, [("203.0.113.1", None)])


def test_a_port_dies_with_its_host_and_a_newer_claim_elsewhere_brings_it_back():
    changes = [port(1, "vm-1"), fip(1, "p1"), delete(Kind.HOST, "vm-1", 2)]
    for state in every_order(changes, "dies"):
        assert state["p1"] == (False, "vm-1", [])  # hidden with its host, no addresses shown
        assert state["fip:1"] == (True, None, [("203.0.113.1", None)])
    # a newer statement puts the port on a live host: it is shown again, whole
    for state in every_order([*changes, host_list(3, ["p1"], "vm-2")], "comes-back"):
        assert state["p1"] == (True, "vm-2", [("10.0.0.1", "vm-2")])
        assert state["fip:1"] == (True, "vm-2", [("203.0.113.1", "vm-2")])
    # a port's own delete is terminal: no later claim brings it back
    for state in every_order([*changes, delete(Kind.HOST_IP, "p1", 3), host_list(4, ["p1"], "vm-2")], "own-delete"):
        assert state["p1"] == (False, "vm-2", [])
    assert not CloudHostIP.objects.filter(host__deleted_at__isnull=False).exists()


def test_a_full_sync_listing_attaches_what_it_lists(provider):
    # events: the host's newest list (at 5) names nothing
    apply(provider, [port(1, "vm-1"), host_list(5, [])])
    assert where(provider)["p1"][1] is None
    # the listing saw the port on vm-1, updated at 7: newer, it wins
    listed = Change(Kind.HOST_IP, Op.UPSERT, "p1", {"host": "vm-1", "port_id": "p1", "addresses": [{"address": "10.0.0.1"}]},
                    make_version(7), Source.FULL_SYNC, "run-1")
    apply(provider, [listed])
    assert where(provider)["p1"] == (True, "vm-1", [("10.0.0.1", "vm-1")])
    assert list(CloudHost.objects.get(host_id="vm-1").ips.values_list("address", flat=True)) == ["10.0.0.1"]
