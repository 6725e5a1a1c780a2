"""Full sync, catch-up and connection test of the OpenStack driver, with the
real openstacksdk talking HTTP to the fake cloud (nothing of the SDK mocked)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

import pytest

from sync.changes import Change, Kind, Op, Source, make_version, parse_timestamp
from sync.drivers.base import AuthError, DriverError, NetworkError
from sync.drivers.openstack import OpenStackDriver, connection, inventory, pages
from tests.fake_openstack import BASE_TIME, FakeOpenStack

SERVERS_PATH = "/compute/v2.1/servers/detail"

# openstacksdk's own deprecation noise, not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for InfluxDB:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'service_type' parameter:PendingDeprecationWarning"),
]


def by_kind(changes) -> dict[Kind, list[Change]]:
    out: dict[Kind, list[Change]] = {kind: [] for kind in Kind}
    for change in changes:
        out[change.kind].append(change)
    return out


def expected_host(rec: dict, source: Source = Source.FULL_SYNC) -> Change:
    image = rec["image"]
    return Change(
        kind=Kind.HOST,
        op=Op.UPSERT,
        external_id=rec["id"],
        fields={
            "hostname": rec["name"],
            "status": "active",
            "project": rec["tenant_id"],
            "hypervisor": rec["OS-EXT-SRV-ATTR:host"],
            "tags": rec["tags"],
            "metadata": rec["metadata"],
            "launched_at": parse_timestamp(rec["OS-SRV-USG:launched_at"]).isoformat(),
            "image": image["id"] if image else None,
            "flavor": rec["_flavor"]["id"],
        },
        version=make_version(parse_timestamp(rec["updated"]), None),
        source=source,
    )


# -- full listing ----------------------------------------------------------------------
def test_full_listing_paginates_servers_and_gives_exact_changes(fake_openstack: FakeOpenStack) -> None:
    data = fake_openstack.data
    data.add_projects(3)
    data.add_flavor(name="m1.small", flavor_id="small-1")
    data.add_image()
    servers = data.add_servers(2500, tags=["prod"], metadata={"role": "web"})
    data.add_servers(2, image=None, with_ports=False)  # boot from volume

    snapshot = inventory.list_inventory(fake_openstack.client_config())
    assert snapshot.kinds == frozenset(Kind)
    assert fake_openstack.count(SERVERS_PATH) == 0, "servers must stream lazily, not be listed up front"
    hosts = by_kind(snapshot.changes)[Kind.HOST]

    assert len(hosts) == 2502
    assert len({c.external_id for c in hosts}) == 2502
    assert hosts[:2500] == [expected_host(rec) for rec in servers]
    assert hosts[-1].fields["image"] is None
    assert hosts[0].fields["flavor"] == "small-1"  # resolved from original_name (2.69)
    assert hosts[0].version == f"{hosts[0].version[:26]}|0000-00-00T00:00:00.000000"
    # 1000 + 1000 + 502, then no next link
    queries = [q for _, _, q in fake_openstack.requests(SERVERS_PATH)]
    assert len(queries) == 3
    assert all("all_tenants=1" in q and "limit=1000" in q for q in queries)
    assert "marker=" + servers[999]["id"] in queries[1]


def test_flavors_private_and_extra_specs(fake_openstack: FakeOpenStack) -> None:
    data = fake_openstack.data
    data.add_flavor(
        name="gpu",
        flavor_id="gpu-1",
        vcpus=8,
        ram=65536,
        disk=100,
        extra_specs={"pci_passthrough:alias": "a100:1"},
        is_public=False,
    )
    data.add_flavor(name="tiny", flavor_id="1", vcpus=1, ram=512, disk=1)
    data.add_server(flavor=data.flavors.records["gpu-1"])

    changes = by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)

    flavors = {c.external_id: c for c in changes[Kind.FLAVOR]}
    assert flavors["gpu-1"].fields == {
        "name": "gpu",
        "cores": 8,
        "memory": 65536,
        "disk": 100,
        "is_public": False,
        "extra_specs": {"pci_passthrough:alias": "a100:1"},
    }
    assert flavors["1"].fields["extra_specs"] == {}
    assert changes[Kind.HOST][0].fields["flavor"] == "gpu-1"
    assert "is_public=None" in fake_openstack.requests("/compute/v2.1/flavors/detail")[0][2]


def test_old_compute_api_gives_flavor_ids_and_separate_extra_specs(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.compute_max_microversion = "2.25"  # before tags (2.26) and embedded flavors (2.47)
    data = fake_openstack.data
    data.add_flavor(name="big", flavor_id="big-1", extra_specs={"hw:cpu_policy": "dedicated"})
    data.add_server(tags=["x"])

    changes = by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)

    host = changes[Kind.HOST][0]
    assert host.fields["flavor"] == "big-1"
    assert "tags" not in host.fields  # not shown is not "no tags"
    assert changes[Kind.FLAVOR][0].fields["extra_specs"] == {"hw:cpu_policy": "dedicated"}
    assert fake_openstack.count("/compute/v2.1/flavors/big-1/os-extra_specs") == 1


def test_deleted_flavor_leaves_host_flavor_out(fake_openstack: FakeOpenStack) -> None:
    data = fake_openstack.data
    flavor = data.add_flavor(name="gone", flavor_id="gone-1")
    data.add_server(flavor=flavor)
    del data.flavors.records["gone-1"]
    data.flavors.touch()

    host = by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)[Kind.HOST][0]
    assert "flavor" not in host.fields


def test_images_paginated_hidden_included(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.glance_max_limit = 100
    data = fake_openstack.data
    images = data.add_images(250)
    data.update_image(images[0]["id"], os_distro="debian", min_disk=10)
    hidden = data.add_image(name="hidden", os_hidden=True, visibility="private")
    # Keep the listing to images only: no servers, so none are created.
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    found = {c.external_id: c for c in by_kind(snapshot.changes)[Kind.IMAGE]}

    assert set(found) == {i["id"] for i in images} | {hidden["id"]}
    assert found[images[0]["id"]].fields == {
        "name": images[0]["name"],
        "status": "active",
        "os_distro": "debian",
        "os_version": "22.04",
        "architecture": "x86_64",
        "min_disk": 10,
        "min_ram": 0,
        "visibility": "public",
    }
    assert found[images[0]["id"]].version.startswith(
        parse_timestamp(images[0]["updated_at"]).strftime("%Y-%m-%dT%H:%M:%S")
    )
    queries = [q for _, _, q in fake_openstack.requests("/image/v2/images")]
    assert len(queries) == 3 + 1  # 100 + 100 + 50, then the hidden pass
    assert all("sort_key=updated_at" in q and "sort_dir=asc" in q for q in queries)


def test_ports_and_floating_ips(fake_openstack: FakeOpenStack) -> None:
    data = fake_openstack.data
    server = data.add_server()
    vm_port = next(iter(data.ports.records.values()))
    dhcp = data.add_port(device_owner="network:dhcp", device_id="dhcp-agent")
    attached = data.add_floating_ip(vm_port)
    detached = data.add_floating_ip()

    ips = {
        c.external_id: c
        for c in by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)[Kind.HOST_IP]
    }

    assert set(ips) == {vm_port["id"], dhcp["id"], f"fip:{attached['id']}", f"fip:{detached['id']}"}
    fixed = vm_port["fixed_ips"][0]["ip_address"]
    assert ips[vm_port["id"]].fields == {
        "host": server["id"],
        "port_id": vm_port["id"],
        "addresses": [
            {"address": fixed, "kind": "fixed", "mac": vm_port["mac_address"], "version": 4}
        ],
    }
    assert ips[dhcp["id"]].fields["host"] is None
    assert ips[f"fip:{attached['id']}"].fields == {
        "host": None,
        "port_id": vm_port["id"],
        "addresses": [
            {"address": attached["floating_ip_address"], "kind": "floating", "version": 4}
        ],
    }
    assert ips[f"fip:{detached['id']}"].fields == {"host": None, "port_id": None, "addresses": []}


def test_projects(fake_openstack: FakeOpenStack) -> None:
    extra = fake_openstack.data.add_project(name="team-a", enabled=False)
    projects = by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)[Kind.PROJECT]
    found = {c.external_id: c.fields for c in projects}
    assert found[extra["id"]] == {"name": "team-a", "domain": "default", "enabled": False}
    assert len(found) == 2  # with the admin project


def test_projects_forbidden_leaves_project_out_of_kinds(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.projects_forbidden = True
    fake_openstack.data.add_server()
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    assert snapshot.kinds == frozenset({Kind.HOST, Kind.FLAVOR, Kind.IMAGE, Kind.HOST_IP})
    changes = by_kind(snapshot.changes)
    assert changes[Kind.PROJECT] == [] and len(changes[Kind.HOST]) == 1


def test_through_the_driver_class(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(2)
    driver = OpenStackDriver()
    config = driver.validate_config(fake_openstack.client_config())
    assert len(by_kind(driver.list_inventory(config).changes)[Kind.HOST]) == 2
    assert len(by_kind(driver.list_changes_since(config, BASE_TIME).changes)[Kind.HOST]) == 2
    assert driver.test_connection(config)["counts"]["host"] == 2


def test_application_credential_auth(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_server()
    config = {
        "auth_url": fake_openstack.auth_url,
        "application_credential_id": "app-cred-id",
        "application_credential_secret": "app-cred-secret",
    }
    hosts = by_kind(inventory.list_inventory(config).changes)[Kind.HOST]
    assert len(hosts) == 1


# -- failures --------------------------------------------------------------------------
def test_500_mid_pagination_raises_from_the_generator(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(2500, with_ports=False)
    fake_openstack.fail(500, SERVERS_PATH, after=1)
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    seen = []
    with pytest.raises(NetworkError, match="listing servers failed.*HTTP 500") as err:
        for change in snapshot.changes:
            seen.append(change)
    assert "Internal Server Error" in str(err.value) or "injected" in str(err.value)
    assert sum(c.kind == Kind.HOST for c in seen) == 1000  # page 1 only; the run must abort
    assert fake_openstack.count(SERVERS_PATH) == 2  # 500 is not retried by keystoneauth


def test_503_is_retried_once(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(3)
    fake_openstack.fail(503, SERVERS_PATH)
    hosts = by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)[Kind.HOST]
    assert len(hosts) == 3
    assert fake_openstack.count(SERVERS_PATH) == 2


def test_other_http_error_is_a_driver_error_with_the_api_message(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.fail(404, "/network/v2.0/floatingips", message="floating IPs are not enabled")
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    with pytest.raises(
        DriverError, match="listing floating IPs failed: floating IPs are not enabled"
    ) as err:
        list(snapshot.changes)
    assert not isinstance(err.value, NetworkError | AuthError)


def test_token_rejected_is_an_auth_error(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.reject_tokens = True
    with pytest.raises(AuthError, match="authentication failed"):
        inventory.list_inventory(fake_openstack.client_config())


def test_wrong_password_is_an_auth_error(fake_openstack: FakeOpenStack) -> None:
    with pytest.raises(AuthError, match="authentication failed"):
        inventory.list_inventory(fake_openstack.client_config(password="nope"))


def test_expired_token_mid_listing_reauthenticates(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(1500, with_ports=False)
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    changes = iter(snapshot.changes)
    first = list(itertools.islice((c for c in changes if c.kind == Kind.HOST), 1000))
    fake_openstack.revoke_tokens()
    rest = [c for c in changes if c.kind == Kind.HOST]
    assert len(first) + len(rest) == 1500
    assert fake_openstack.count("/identity/v3/auth/tokens") == 2


def test_dropped_connection_is_a_network_error(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(2)
    fake_openstack.drop(SERVERS_PATH, times=2)  # the first try and keystoneauth's one retry
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    with pytest.raises(NetworkError, match=r"listing servers failed: cannot reach http://127\.0\.0\.1:\d+: remote end closed"):
        list(snapshot.changes)
    assert fake_openstack.count(SERVERS_PATH) == 2


def test_single_dropped_connection_is_retried(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(2)
    fake_openstack.drop(SERVERS_PATH)
    assert len(by_kind(inventory.list_inventory(fake_openstack.client_config()).changes)[Kind.HOST]) == 2


def test_slow_answer_times_out_as_network_error(fake_openstack: FakeOpenStack, monkeypatch) -> None:
    monkeypatch.setattr(connection, "API_TIMEOUT", 0.3)
    fake_openstack.slow(2.0, "/image/v2/images", times=2)
    snapshot = inventory.list_inventory(fake_openstack.client_config())
    with pytest.raises(NetworkError, match="listing images failed"):
        list(snapshot.changes)


@pytest.mark.timeout(20)
def test_auth_url_of_another_service_fails_fast(fake_openstack: FakeOpenStack) -> None:
    # The generic keystoneauth plugin would hang forever here (a 401 during
    # auth_url discovery re-enters its auth lock); the v3 plugin just fails.
    config = fake_openstack.client_config(auth_url=f"{fake_openstack.url}/compute/v2.1")
    with pytest.raises(DriverError, match="check auth_url"):
        inventory.list_inventory(config)


def test_unknown_region_is_a_missing_catalog_entry(fake_openstack: FakeOpenStack) -> None:
    with pytest.raises(DriverError, match="missing service catalog entry.*Nowhere"):
        inventory.list_inventory(fake_openstack.client_config(region_name="Nowhere"))


def test_tls_failure_is_a_config_problem(fake_openstack: FakeOpenStack) -> None:
    config = fake_openstack.client_config(auth_url=fake_openstack.auth_url.replace("http:", "https:"))
    with pytest.raises(DriverError, match="TLS error") as err:
        inventory.list_inventory(config)
    assert not isinstance(err.value, NetworkError)


def test_unreachable_cloud_is_a_network_error() -> None:
    fake_openstack = FakeOpenStack().start()
    config = fake_openstack.client_config()
    fake_openstack.stop()  # nothing listens on that port any more
    with pytest.raises(NetworkError, match="authenticating with Keystone failed"):
        inventory.list_inventory(config)


# -- catch-up --------------------------------------------------------------------------
def test_changes_since_includes_deleted_servers_as_deletes(fake_openstack: FakeOpenStack) -> None:
    data = fake_openstack.data
    servers = data.add_servers(20)
    images = data.add_images(3)
    since = data.clock + timedelta(seconds=1)
    data.tick(5)
    changed = data.update_server(servers[3]["id"], status="SHUTOFF", name="renamed")
    deleted = data.delete_server(servers[7]["id"])
    data.update_image(images[1]["id"], name="new-name")

    snapshot = inventory.list_changes_since(fake_openstack.client_config(), since)
    assert snapshot.kinds == frozenset()
    changes = by_kind(snapshot.changes)

    hosts = {c.external_id: c for c in changes[Kind.HOST]}
    assert set(hosts) == {changed["id"], deleted["id"]}
    assert hosts[changed["id"]].op == Op.UPSERT and hosts[changed["id"]].source == Source.CATCH_UP
    assert hosts[changed["id"]].fields["status"] == "stopped"
    assert hosts[changed["id"]].fields["hostname"] == "renamed"
    assert hosts[deleted["id"]].op == Op.DELETE
    assert hosts[deleted["id"]].version == make_version(parse_timestamp(deleted["updated"]), None)
    assert [c.external_id for c in changes[Kind.IMAGE]] == [images[1]["id"]]
    query = fake_openstack.requests(SERVERS_PATH)[0][2]
    assert "changes-since=" in query and "all_tenants=1" in query


def _deleted_markers_setup(fake_openstack: FakeOpenStack, monkeypatch, n: int, deleted_at: list[int]):
    monkeypatch.setattr(pages, "PAGE_SIZE", 10)
    fake_openstack.nova_marker_bug = True
    servers = fake_openstack.data.add_servers(n, with_ports=False)
    for index in deleted_at:
        fake_openstack.data.delete_server(servers[index]["id"])
    return servers


def test_marker_not_found_on_deleted_server_is_worked_around(
    fake_openstack: FakeOpenStack, monkeypatch
) -> None:
    # Pages of 10: servers #10 and #20 (the page markers) are deleted.
    servers = _deleted_markers_setup(fake_openstack, monkeypatch, 35, [9, 19, 22])
    snapshot = inventory.list_changes_since(fake_openstack.client_config(), BASE_TIME)
    hosts = by_kind(snapshot.changes)[Kind.HOST]

    assert [c.external_id for c in hosts] == [s["id"] for s in servers]  # each exactly once
    ops = Counter(c.op for c in hosts)
    assert ops == {Op.UPSERT: 32, Op.DELETE: 3}
    # marker #10 and marker #20 were refused once each, then re-read from #9 / #19
    assert fake_openstack.statuses(SERVERS_PATH) == [200, 400, 200, 400, 200, 200]


def test_marker_not_found_after_a_run_of_deleted_servers(fake_openstack: FakeOpenStack, monkeypatch) -> None:
    servers = _deleted_markers_setup(fake_openstack, monkeypatch, 40, list(range(5, 27)))  # 22 in a row
    hosts = by_kind(inventory.list_changes_since(fake_openstack.client_config(), BASE_TIME).changes)[
        Kind.HOST
    ]
    assert [c.external_id for c in hosts] == [s["id"] for s in servers]


def test_marker_deleted_between_pages_of_a_full_sync(fake_openstack: FakeOpenStack, monkeypatch) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 10)
    fake_openstack.nova_marker_bug = True
    servers = fake_openstack.data.add_servers(25, with_ports=False)
    changes = iter(inventory.list_inventory(fake_openstack.client_config()).changes)
    first = list(itertools.islice((c for c in changes if c.kind == Kind.HOST), 10))
    fake_openstack.data.delete_server(servers[9]["id"])  # the marker of the next request
    rest = [c for c in changes if c.kind == Kind.HOST]
    ids = [c.external_id for c in first + rest]
    assert ids == [s["id"] for s in servers]  # the deleted one was listed before it went


def test_without_the_nova_bug_no_workaround_is_needed(fake_openstack: FakeOpenStack, monkeypatch) -> None:
    servers = _deleted_markers_setup(fake_openstack, monkeypatch, 25, [9, 19])
    fake_openstack.nova_marker_bug = False
    hosts = by_kind(inventory.list_changes_since(fake_openstack.client_config(), BASE_TIME).changes)[
        Kind.HOST
    ]
    assert [c.external_id for c in hosts] == [s["id"] for s in servers]
    assert fake_openstack.count(SERVERS_PATH) == 3


# -- test_connection -------------------------------------------------------------------
def test_test_connection_reports_counts_and_endpoints(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.data.add_servers(150)
    fake_openstack.data.add_images(3)
    result = inventory.test_connection(fake_openstack.client_config())
    assert result["ok"] is True
    assert result["endpoints"] == {
        "identity": f"{fake_openstack.url}/identity",
        "compute": f"{fake_openstack.url}/compute/v2.1",
        "image": f"{fake_openstack.url}/image",
        "network": f"{fake_openstack.url}/network",
    }
    assert result["counts"] == {"host": 100, "flavor": 1, "image": 4, "host_ip": 100, "project": 1}
    assert result["more"] == {"host": True, "flavor": False, "image": False, "host_ip": True}
    assert result["compute_microversion"] == "2.69"
    assert result["project_id"] == "admin-project-id"
    assert result["warnings"] == []


def test_test_connection_projects_forbidden_is_a_warning(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.projects_forbidden = True
    result = inventory.test_connection(fake_openstack.client_config())
    assert result["counts"]["project"] is None
    assert "projects cannot be listed" in result["warnings"][0]


def test_test_connection_missing_catalog_entry(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.catalog_exclude = {"network"}
    with pytest.raises(DriverError, match="missing catalog entry: no network endpoint"):
        inventory.test_connection(fake_openstack.client_config())


def test_test_connection_auth_failure(fake_openstack: FakeOpenStack) -> None:
    with pytest.raises(AuthError, match="authentication failed"):
        inventory.test_connection(fake_openstack.client_config(username="ghost"))


def test_test_connection_network_failure(fake_openstack: FakeOpenStack) -> None:
    fake_openstack.drop("/compute/v2.1/servers/detail", times=2)
    with pytest.raises(NetworkError, match=r"listing servers failed: cannot reach http://127\.0\.0\.1:\d+: remote end closed"):
        inventory.test_connection(fake_openstack.client_config())
