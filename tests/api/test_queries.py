"""No N+1: listing hosts costs the same number of queries for 10 or 1,000."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.models import CloudFlavor, CloudHost, CloudHostIP, CloudImage, CloudPort, CloudProject


def make_hosts(provider, n: int, offset: int = 0) -> None:
    """n hosts, each with its own flavor, image, project, a port and two IPs (bulk)."""
    rng = range(offset, offset + n)
    flavors = CloudFlavor.all_objects.bulk_create(
        CloudFlavor(cloudprovider=provider, flavor_id=f"f{i}", name=f"m{i}") for i in rng
    )
    images = CloudImage.all_objects.bulk_create(
        CloudImage(cloudprovider=provider, image_id=f"i{i}", name=f"img{i}") for i in rng
    )
    projects = CloudProject.all_objects.bulk_create(
        CloudProject(cloudprovider=provider, project_id=f"p{i}", name=f"proj{i}") for i in rng
    )
    hosts = CloudHost.all_objects.bulk_create(
        CloudHost(
            cloudprovider=provider,
            host_id=f"h{i}",
            hostname=f"vm{i}",
            status="active",
            cloudflavor=flavors[k],
            image=images[k],
            project=projects[k],
        )
        for k, i in enumerate(rng)
    )
    ports = CloudPort.all_objects.bulk_create(
        CloudPort(cloudprovider=provider, port_id=f"port{i}", host=hosts[k])
        for k, i in enumerate(rng)
    )
    CloudHostIP.objects.bulk_create(
        [
            *(
                CloudHostIP(host=h, port=ports[k], address=f"10.{k // 250}.{k % 250}.1")
                for k, h in enumerate(hosts)
            ),
            *(CloudHostIP(host=h, address=f"fd00::{k:x}", version=6) for k, h in enumerate(hosts)),
        ]
    )


def count_queries(api, url: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.json()


def test_host_list_query_count_is_constant(admin_api, provider):
    # given
    admin_api.get("/api/cloud-hosts/?limit=1")  # warm up: token lookup, content types
    make_hosts(provider, 10)
    small, data = count_queries(admin_api, "/api/cloud-hosts/?limit=1000")
    assert len(data["results"]) == 10
    # when
    make_hosts(provider, 990, offset=10)
    large, data = count_queries(admin_api, "/api/cloud-hosts/?limit=1000")
    # then
    assert len(data["results"]) == 1000
    assert all(
        len(row["ip_addresses"]) == 2 and row["flavor"] and row["image"] and row["project"]
        for row in data["results"]
    )
    assert data["results"][0]["ip_addresses"][0]["port_id"] == "port0"
    print(f"host list queries: 10 hosts -> {small}, 1000 hosts -> {large}")
    assert large == small
    assert large <= 5, large  # token, count, page (with joins), IPs (with ports)


def test_other_lists_query_counts(admin_api, provider, django_assert_max_num_queries):
    from django.utils import timezone

    from sync.models import Event, SyncRun

    make_hosts(provider, 50)
    Event.objects.bulk_create(
        Event(cloudprovider=provider, key=f"k{i}", status="dead", received_at=timezone.now())
        for i in range(50)
    )
    SyncRun.objects.bulk_create(
        SyncRun(cloudprovider=provider, kind="dry_run", status="planned", plan={"x": i})
        for i in range(50)
    )
    admin_api.get("/api/events/?limit=1")
    for url in (
        "cloud-flavors",
        "cloud-images",
        "cloud-projects",
        "events",
        "sync-runs",
        "cloud-providers",
    ):
        with django_assert_max_num_queries(4):
            assert admin_api.get(f"/api/{url}/?limit=1000").status_code == 200
