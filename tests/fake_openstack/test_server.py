"""The fake OpenStack's own behaviour, through plain HTTP (requests)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fake_openstack import BASE_TIME, FakeOpenStack, fake_openstack_server, iso


@pytest.fixture(scope="module")
def server():
    with fake_openstack_server() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenStack) -> FakeOpenStack:
    server.reset()
    return server


def token(fake: FakeOpenStack) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"name": "Default"}, "password": "secret"}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
        }
    }
    response = requests.post(f"{fake.url}/identity/v3/auth/tokens", json=body, timeout=5)
    assert response.status_code == 201
    catalog = {s["type"] for s in response.json()["token"]["catalog"]}
    assert catalog == {"identity", "compute", "image", "network"}
    return response.headers["X-Subject-Token"]


def get(fake: FakeOpenStack, path: str, **params) -> requests.Response:
    headers = {"X-Auth-Token": token(fake), "OpenStack-API-Version": "compute 2.69"}
    return requests.get(fake.url + path, params=params, headers=headers, timeout=5)


def test_servers_pagination_links_and_all_tenants(fake: FakeOpenStack) -> None:
    fake.data.add_projects(2)
    servers = fake.data.add_servers(5)
    page = get(fake, "/compute/v2.1/servers/detail", limit=2, all_tenants=1).json()
    assert [s["id"] for s in page["servers"]] == [s["id"] for s in servers[:2]]
    assert page["servers_links"][0]["rel"] == "next"
    assert f"marker={servers[1]['id']}" in page["servers_links"][0]["href"]
    last = get(
        fake, "/compute/v2.1/servers/detail", limit=2, all_tenants=1, marker=servers[3]["id"]
    ).json()
    assert [s["id"] for s in last["servers"]] == [servers[4]["id"]]
    assert "servers_links" not in last
    # without all_tenants only the token's project (admin) is listed
    assert get(fake, "/compute/v2.1/servers/detail").json()["servers"] == []


def test_microversion_shapes_the_flavor(fake: FakeOpenStack) -> None:
    fake.data.add_server()
    new = get(fake, "/compute/v2.1/servers/detail", all_tenants=1)
    assert new.headers["OpenStack-API-Version"] == "compute 2.69"
    assert "original_name" in new.json()["servers"][0]["flavor"]
    headers = {"X-Auth-Token": token(fake)}  # no header: 2.1
    old = requests.get(
        f"{fake.url}/compute/v2.1/servers/detail?all_tenants=1", headers=headers, timeout=5
    ).json()
    assert "id" in old["servers"][0]["flavor"] and "tags" not in old["servers"][0]


def test_changes_since_and_the_marker_bug(fake: FakeOpenStack) -> None:
    servers = fake.data.add_servers(3)
    fake.data.delete_server(servers[1]["id"])
    listed = get(fake, "/compute/v2.1/servers/detail", all_tenants=1).json()["servers"]
    assert len(listed) == 2
    since = get(
        fake, "/compute/v2.1/servers/detail", all_tenants=1, **{"changes-since": iso(BASE_TIME)}
    )
    assert [s["status"] for s in since.json()["servers"]] == ["ACTIVE", "DELETED", "ACTIVE"]
    fake.nova_marker_bug = True
    answer = get(fake, "/compute/v2.1/servers/detail", all_tenants=1, marker=servers[1]["id"])
    assert answer.status_code == 400
    assert answer.json()["badRequest"]["message"] == f"marker [{servers[1]['id']}] not found"


def test_faults_and_counters(fake: FakeOpenStack) -> None:
    fake.fail(500, "/image/v2/images", after=1)
    fake.slow(0.2, "/network/v2.0/ports")
    assert get(fake, "/image/v2/images").status_code == 200
    assert get(fake, "/image/v2/images").status_code == 500
    assert get(fake, "/image/v2/images").status_code == 200
    started = time.monotonic()
    assert get(fake, "/network/v2.0/ports").status_code == 200
    assert time.monotonic() - started >= 0.2
    fake.drop("/network/v2.0/floatingips")
    with pytest.raises(requests.ConnectionError):
        get(fake, "/network/v2.0/floatingips")
    assert fake.count("/image/v2/images") == 3
    assert fake.statuses("/image/v2/images") == [200, 500, 200]
    assert fake.count("/identity/v3/auth/tokens", method="POST") == 5
    fake.reject_tokens = True
    with pytest.raises(AssertionError):
        token(fake)


def test_images_filter_and_page(fake: FakeOpenStack) -> None:
    images = fake.data.add_images(4)
    fake.data.update_image(images[0]["id"], name="changed")
    after = iso(fake.data.clock)  # the update was the last write
    page = get(fake, "/image/v2/images", limit=10, updated_at=f"gte:{after}").json()
    assert [i["id"] for i in page["images"]] == [images[0]["id"]]
    first = get(fake, "/image/v2/images", limit=2).json()
    assert first["next"].startswith("/v2/images?") and len(first["images"]) == 2


def test_many_servers_are_listed_quickly() -> None:
    with fake_openstack_server() as fake:
        fake.data.add_servers(20_000, with_ports=False)
        session = requests.Session()
        session.headers.update({"X-Auth-Token": token(fake)})
        started, marker, seen = time.monotonic(), None, 0
        while True:
            params = {"all_tenants": 1, "limit": 1000, **({"marker": marker} if marker else {})}
            servers = session.get(
                f"{fake.url}/compute/v2.1/servers/detail", params=params, timeout=10
            ).json()["servers"]
            if not servers:
                break
            seen, marker = seen + len(servers), servers[-1]["id"]
        assert seen == 20_000
        assert time.monotonic() - started < 10  # ~1-2 s here; paging must not be O(n) per page
