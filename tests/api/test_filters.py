"""Inventory filters return exactly the matching rows; bad values are 400."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.models import CloudHost, CloudHostIP, CloudPort


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def hosts(provider_factory, host_factory):
    east = provider_factory(name="east")
    west = provider_factory(name="west")
    return {
        "a": host_factory(east, ips=("10.0.0.5", "192.0.2.10"), status="active", hypervisor="cmp1"),
        "b": host_factory(east, ips=("10.0.1.7",), status="error", hypervisor="cmp2"),
        "c": host_factory(west, ips=("10.0.0.200", "2001:db8::5"), status="stopped"),
        "d": host_factory(west, ips=("172.16.5.1",), status="active", hostname="db-primary"),
        "e": host_factory(west, ips=("2001:db8:1:2:3:4:5:6",), status="building"),
        "providers": (east, west),
    }


def pk(hosts, *names) -> set[int]:
    return {hosts[n].pk for n in names}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("ip=10.0.0.5", "a"),
        ("ip=10.0.0.50", ""),
        ("ip=2001:0db8:0000::5", "c"),
        ("ip_cidr=10.0.0.0/24", "ac"),
        ("ip_cidr=10.0.0.0/23", "abc"),
        ("ip_cidr=10.0.0.128/25", "c"),
        ("ip_cidr=10.0.0.0/8", "abc"),
        ("ip_cidr=10.0.0.5/32", "a"),
        ("ip_cidr=0.0.0.0/0", "abcd"),
        ("ip_cidr=172.16.0.0/12", "d"),
        ("ip_cidr=192.0.2.0/28", "a"),
        ("ip_cidr=2001:db8::/32", "ce"),
        ("ip_cidr=2001:db8:1::/48", "e"),
        ("ip_cidr=2001:db8::/64", "c"),
        ("ip_cidr=::/0", "ce"),
        ("ip_cidr=10.0.0.7/24", "ac"),  # host bits are ignored
    ],
)
def test_ip_filters(admin_api, hosts, query, expected):
    assert ids(admin_api.get(f"/api/cloud-hosts/?{query}")) == pk(hosts, *expected)


def test_ip_filter_does_not_duplicate_hosts(admin_api, hosts):
    host = hosts["a"]
    port = CloudPort.all_objects.create(cloudprovider=host.cloudprovider, port_id="p1", host=host)
    CloudHostIP.objects.create(host=host, port=port, address="10.0.0.5")
    response = admin_api.get("/api/cloud-hosts/?ip_cidr=10.0.0.0/24")
    assert [row["id"] for row in response.json()["results"]].count(host.pk) == 1
    assert admin_api.get("/api/cloud-hosts/?ip=10.0.0.5").json()["count"] == 1


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=active", "ad"),
        ("status=active&status=error", "abd"),
        ("provider=east", "ab"),
        ("provider=east,west", "abcde"),
        ("hypervisor=cmp2", "b"),
        ("hostname=db-primary", "d"),
        ("hostname__ic=PRIMARY", "d"),
        ("search=db-prim", "d"),
        ("provider=west&status=active", "d"),
        ("provider=nope", ""),
    ],
)
def test_host_filters(admin_api, hosts, query, expected):
    assert ids(admin_api.get(f"/api/cloud-hosts/?{query}")) == pk(hosts, *expected)


def test_filter_by_provider_id_project_flavor_image(admin_api, hosts):
    east, west = hosts["providers"]
    a = hosts["a"]
    assert ids(admin_api.get(f"/api/cloud-hosts/?provider={west.pk}")) == pk(hosts, "c", "d", "e")
    assert ids(admin_api.get(f"/api/cloud-hosts/?project={a.project_id}")) == {a.pk}
    assert ids(admin_api.get(f"/api/cloud-hosts/?project_id={a.project.project_id}")) == {a.pk}
    assert ids(admin_api.get(f"/api/cloud-hosts/?flavor={a.cloudflavor_id}")) == {a.pk}
    assert ids(admin_api.get(f"/api/cloud-hosts/?flavor_id={a.cloudflavor.flavor_id}")) == {a.pk}
    assert ids(admin_api.get(f"/api/cloud-hosts/?image={a.image_id}")) == {a.pk}
    assert ids(admin_api.get(f"/api/cloud-hosts/?image_id={a.image.image_id}")) == {a.pk}
    assert ids(admin_api.get("/api/cloud-flavors/?provider=east")) == {
        hosts["a"].cloudflavor_id,
        hosts["b"].cloudflavor_id,
    }


def test_tombstones_hidden_unless_asked(admin_api, hosts):
    CloudHost.all_objects.filter(pk=hosts["b"].pk).update(deleted_at=timezone.now())
    assert ids(admin_api.get("/api/cloud-hosts/?provider=east")) == pk(hosts, "a")
    shown = admin_api.get("/api/cloud-hosts/?provider=east&include_deleted=true")
    assert ids(shown) == pk(hosts, "a", "b")
    assert admin_api.get(f"/api/cloud-hosts/{hosts['b'].pk}/").status_code == 404
    detail = admin_api.get(f"/api/cloud-hosts/{hosts['b'].pk}/?include_deleted=true")
    assert detail.status_code == 200 and detail.json()["deleted_at"]


def test_modified_and_created_since(admin_api, hosts):
    past = timezone.now() - timedelta(days=3)
    CloudHost.all_objects.exclude(pk=hosts["a"].pk).update(modified_at=past, created_at=past)
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(admin_api.get("/api/cloud-hosts/", {"modified_since": since})) == pk(hosts, "a")
    assert ids(admin_api.get("/api/cloud-hosts/", {"created_since": since})) == pk(hosts, "a")


def test_ordering_and_pagination(admin_api, hosts):
    rows = admin_api.get("/api/cloud-hosts/?ordering=-hostname&limit=2").json()
    assert rows["count"] == 5 and len(rows["results"]) == 2
    names = [
        r["hostname"]
        for r in admin_api.get("/api/cloud-hosts/?ordering=-hostname").json()["results"]
    ]
    assert names == sorted(names, reverse=True)
    assert (
        admin_api.get("/api/cloud-hosts/?limit=100000").status_code == 200
    )  # capped, not an error


@pytest.mark.parametrize(
    "query, field",
    [
        ("ip=10.0.0.999", "ip"),
        ("ip=hello", "ip"),
        ("ip_cidr=10.0.0.0/33", "ip_cidr"),
        ("ip_cidr=garbage", "ip_cidr"),
        ("status=exploded", "status"),
        ("modified_since=yesterday", "modified_since"),
        ("project=abc", "project"),
        ("flavor=-1", "flavor"),
        ("image=99999999999999999999999", "image"),
        ("include_deleted=maybe", "include_deleted"),
    ],
)
def test_bad_values_are_400_with_field_message(admin_api, hosts, query, field):
    response = admin_api.get(f"/api/cloud-hosts/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_host_representation(admin_api, hosts):
    a = hosts["a"]
    data = admin_api.get(f"/api/cloud-hosts/{a.pk}/").json()
    assert data["provider"]["name"] == "east"
    assert data["flavor"] == {
        "id": a.cloudflavor_id,
        "url": f"http://testserver/api/cloud-flavors/{a.cloudflavor_id}/",
        "flavor_id": a.cloudflavor.flavor_id,
        "name": a.cloudflavor.name,
    }
    assert data["image"]["image_id"] == a.image.image_id
    assert data["project"]["project_id"] == a.project.project_id
    assert [ip["address"] for ip in data["ip_addresses"]] == ["10.0.0.5", "192.0.2.10"]
    assert data["ip_addresses"][0] == {
        "address": "10.0.0.5",
        "version": 4,
        "kind": "fixed",
        "mac": "",
        "port_id": None,
    }


@pytest.mark.parametrize(
    "url, query, expected",
    [
        ("events", "status=dead", {"dead"}),
        ("events", "status=dead&status=failed", {"dead", "failed"}),
        ("events", "provider=east", {"dead", "processed"}),
        ("events", "event_type=compute.instance.create.end", {"processed"}),
        ("sync-runs", "status=planned", {"planned"}),
        ("sync-runs", "kind=full", {"succeeded"}),
    ],
)
def test_event_and_run_filters(admin_api, hosts, url, query, expected):
    from sync.models import Event, SyncRun

    east, west = hosts["providers"]
    now = timezone.now()
    Event.objects.create(cloudprovider=east, key="1", status="dead", received_at=now)
    Event.objects.create(
        cloudprovider=east,
        key="2",
        status="processed",
        received_at=now,
        event_type="compute.instance.create.end",
    )
    Event.objects.create(cloudprovider=west, key="3", status="failed", received_at=now)
    SyncRun.objects.create(cloudprovider=east, kind="dry_run", status="planned")
    SyncRun.objects.create(cloudprovider=west, kind="full", status="succeeded")
    response = admin_api.get(f"/api/{url}/?{query}")
    assert response.status_code == 200
    assert {row["status"] for row in response.json()["results"]} == expected
    assert len(response.json()["results"]) == len(expected)
