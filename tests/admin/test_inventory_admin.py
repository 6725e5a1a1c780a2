"""Inventory pages: read-only, searchable, live rows by default."""

from __future__ import annotations

import pytest
from django.utils import timezone

from sync.models import CloudFlavor, CloudHost, CloudHostIP, CloudImage, CloudPort, CloudProject

pytestmark = pytest.mark.django_db

BASE = "/admin/sync/"


@pytest.fixture
def inventory(provider):
    project = CloudProject.objects.create(
        cloudprovider=provider, project_id="proj-1", name="tenant-alpha"
    )
    flavor = CloudFlavor.objects.create(
        cloudprovider=provider, flavor_id="fl-1", name="m1.unique", cores=2
    )
    image = CloudImage.objects.create(
        cloudprovider=provider, image_id="img-1", name="debian-unique"
    )
    live = CloudHost.objects.create(
        cloudprovider=provider,
        host_id="3f0c-live",
        hostname="web-live-01",
        status="active",
        hypervisor="hv-17.example",
        cloudflavor=flavor,
        image=image,
        project=project,
    )
    gone = CloudHost.objects.create(
        cloudprovider=provider,
        host_id="9d2a-gone",
        hostname="web-gone-02",
        deleted_at=timezone.now(),
    )
    port = CloudPort.objects.create(cloudprovider=provider, port_id="port-1", host=live)
    CloudHostIP.objects.create(host=live, port=port, address="10.20.30.40", mac="fa:16:3e:00:00:01")
    return {
        "project": project,
        "flavor": flavor,
        "image": image,
        "live": live,
        "gone": gone,
        "port": port,
    }


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("cloudhost", "web-live-01"),
        ("cloudflavor", "m1.unique"),
        ("cloudimage", "debian-unique"),
        ("cloudproject", "tenant-alpha"),
        ("cloudport", "port-1"),
    ],
)
def test_lists_render_rows_and_are_view_only(admin_client, inventory, model, expected):
    response = admin_client.get(f"{BASE}{model}/")
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert response.context["has_add_permission"] is False
    assert admin_client.get(f"{BASE}{model}/add/").status_code == 403

    model_admin = response.context["cl"].model_admin
    request = response.wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)


def test_detail_is_read_only_and_shows_ips(admin_client, inventory):
    host = inventory["live"]
    url = f"{BASE}cloudhost/{host.pk}/change/"
    response = admin_client.get(url)
    html = response.content.decode()

    assert response.status_code == 200
    assert "10.20.30.40" in html and "fa:16:3e:00:00:01" in html
    assert 'name="hostname"' not in html  # no input: read-only
    assert admin_client.post(url, {"hostname": "renamed"}).status_code == 403
    host.refresh_from_db()
    assert host.hostname == "web-live-01"


def test_hosts_default_to_live_and_deleted_filter_shows_tombstones(admin_client, inventory):
    live = admin_client.get(f"{BASE}cloudhost/").content.decode()
    assert "web-live-01" in live and "web-gone-02" not in live

    deleted = admin_client.get(f"{BASE}cloudhost/?deleted=deleted").content.decode()
    assert "web-gone-02" in deleted and "web-live-01" not in deleted

    every = admin_client.get(f"{BASE}cloudhost/?deleted=all").content.decode()
    assert "web-gone-02" in every and "web-live-01" in every

    gone = inventory["gone"]
    assert admin_client.get(f"{BASE}cloudhost/{gone.pk}/change/").status_code == 200


@pytest.mark.parametrize("query", ["10.20.30.40", "3f0c-live", "web-live"])
def test_host_search_by_ip_id_and_hostname(admin_client, inventory, query):
    html = admin_client.get(f"{BASE}cloudhost/", {"q": query}).content.decode()
    assert "web-live-01" in html


def test_host_filters_by_status_hypervisor_and_provider(admin_client, inventory):
    provider = inventory["live"].cloudprovider
    for params in (
        {"status__exact": "active"},
        {"hypervisor": "hv-17.example"},
        {"cloudprovider__id__exact": provider.pk},
    ):
        response = admin_client.get(f"{BASE}cloudhost/", params)
        assert response.status_code == 200
        assert "web-live-01" in response.content.decode(), params
    assert (
        "web-live-01"
        not in admin_client.get(f"{BASE}cloudhost/", {"status__exact": "error"}).content.decode()
    )


def test_host_list_query_count_does_not_grow_with_rows(
    admin_client, inventory, django_assert_max_num_queries
):
    provider = inventory["live"].cloudprovider
    for i in range(30):
        CloudHost.objects.create(
            cloudprovider=provider,
            host_id=f"h-{i}",
            hostname=f"bulk-{i}",
            cloudflavor=inventory["flavor"],
            image=inventory["image"],
            project=inventory["project"],
        )
    with django_assert_max_num_queries(12):
        assert admin_client.get(f"{BASE}cloudhost/").status_code == 200
