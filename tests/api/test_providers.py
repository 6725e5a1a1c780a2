"""Cloud providers: CRUD for admins, client_config write-only everywhere,
endpoint URL and secret shown on create and rotation only, sync status fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.models import CloudProvider, Event, SyncRun

SECRET = "s3cr3t-ZEBRA-41c9f7-never-shown"
CONFIG = {"auth_url": "https://keystone.example/v3", "password": SECRET, "username": "sync"}


def create(api, **overrides):
    body = {
        "name": "waw1",
        "cloud_sync_enabled": True,
        "cloud_sync_driver": "fake.configured",
        "client_config": CONFIG,
        **overrides,
    }
    return api.post("/api/cloud-providers/", body, format="json")


def test_create_returns_endpoint_and_config_keys_only(admin_api):
    # when
    response = create(admin_api)
    # then
    assert response.status_code == 201, response.content
    data = response.json()
    provider = CloudProvider.objects.get(name="waw1")
    assert data["client_config_keys"] == ["auth_url", "password", "username"]
    assert "client_config" not in data
    assert data["endpoint_secret"] == provider.endpoint_secret
    assert data["endpoint_url"] == f"http://testserver/cloud-sync/provider/{provider.pk}/"
    assert data["events_queued"] == 0
    assert provider.client_config == CONFIG


def test_invalid_client_config_is_a_400_with_field_errors(admin_api):
    response = create(admin_api, client_config={"auth_url": "x"})
    assert response.status_code == 400
    assert response.json() == {"client_config": ["password: this key is required"]}
    assert create(admin_api, client_config=["not", "an", "object"]).status_code == 400
    unknown = create(admin_api, name="other", cloud_sync_driver="no-such-driver")
    assert unknown.status_code == 400
    assert "Unknown driver" in unknown.json()["cloud_sync_driver"][0]
    assert not CloudProvider.objects.exists()


def test_update_replaces_config_and_validates(admin_api, provider_factory):
    provider = provider_factory(cloud_sync_driver="fake.configured", client_config=CONFIG)
    url = f"/api/cloud-providers/{provider.pk}/"
    bad = admin_api.patch(url, {"client_config": {"password": "x"}}, format="json")
    assert bad.status_code == 400
    assert bad.json() == {"client_config": ["auth_url: this key is required"]}

    ok = admin_api.patch(url, {"client_config": {"auth_url": "u", "password": "p2"}}, format="json")
    assert ok.status_code == 200
    assert ok.json()["client_config_keys"] == ["auth_url", "password"]
    assert "endpoint_secret" not in ok.json()
    provider.refresh_from_db()
    assert provider.client_config == {"auth_url": "u", "password": "p2"}

    renamed = admin_api.patch(url, {"name": "renamed"}, format="json")
    assert renamed.status_code == 200
    provider.refresh_from_db()
    assert provider.name == "renamed" and provider.client_config["password"] == "p2"


def test_rotate_secret(admin_api, provider):
    old = provider.endpoint_secret
    response = admin_api.post(f"/api/cloud-providers/{provider.pk}/rotate-secret/")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"id", "endpoint_url", "endpoint_secret"}
    assert data["endpoint_url"] == f"http://testserver/cloud-sync/provider/{provider.pk}/"
    provider.refresh_from_db()
    assert data["endpoint_secret"] == provider.endpoint_secret != old


def test_status_fields(admin_api, provider_factory):
    # given
    provider = provider_factory()
    other = provider_factory()
    now = timezone.now()
    for i, status in enumerate(["queued", "queued", "failed", "dead", "processed"]):
        Event.objects.create(cloudprovider=provider, key=f"k{i}", status=status, received_at=now)
    Event.objects.create(cloudprovider=other, key="x", status="dead", received_at=now)
    old = SyncRun.objects.create(
        cloudprovider=provider, kind="full", status="succeeded", drift_healed=9
    )
    latest = SyncRun.objects.create(
        cloudprovider=provider, kind="full", status="succeeded", drift_healed=3
    )
    SyncRun.objects.filter(pk=old.pk).update(started_at=now - timedelta(days=1))
    SyncRun.objects.create(cloudprovider=provider, kind="dry_run", status="planned", drift_healed=7)
    CloudProvider.objects.filter(pk=provider.pk).update(
        last_full_sync_at=now, last_full_sync_status="succeeded", last_event_received_at=now
    )
    # when
    data = admin_api.get(f"/api/cloud-providers/{provider.pk}/").json()
    # then
    assert (data["events_queued"], data["events_failed"], data["events_dead"]) == (2, 1, 1)
    assert data["last_full_sync_run"] == latest.pk
    assert data["last_full_sync_drift_healed"] == 3
    assert data["last_full_sync_status"] == "succeeded"
    assert data["last_event_received_at"] is not None
    listed = {p["id"]: p for p in admin_api.get("/api/cloud-providers/").json()["results"]}
    assert listed[other.pk]["events_dead"] == 1
    assert listed[other.pk]["last_full_sync_run"] is None


def test_delete(admin_api, provider, provider_factory):
    """Its history goes with it (no database constraint on the history's
    provider column: Django's collector deletes it), another's stays."""
    from django.utils import timezone

    from sync.models import HistoryEntry

    other = provider_factory(name="other-provider")
    for p in (provider, other):
        HistoryEntry.objects.create(
            cloudprovider=p, kind="host", object_pk=1, external_id="h", action="created",
            applied_at=timezone.now(), cause="full",
        )
    assert admin_api.delete(f"/api/cloud-providers/{provider.pk}/").status_code == 204
    assert not CloudProvider.objects.filter(pk=provider.pk).exists()
    assert list(HistoryEntry.objects.values_list("cloudprovider_id", flat=True)) == [other.pk]


def test_history_an_apply_committed_during_the_delete_is_removed_after_it(
    provider, provider_factory, django_capture_on_commit_callbacks
):
    """No constraint stops an apply's entries from committing while the
    collector deletes the provider: they are deleted once the delete commits."""
    from django.utils import timezone

    from sync.models import HistoryEntry

    other = provider_factory(name="other-provider")

    def entry(p_id: int) -> None:
        HistoryEntry.objects.create(
            cloudprovider_id=p_id, kind="host", object_pk=1, external_id="h", action="created",
            applied_at=timezone.now(), cause="full",
        )

    gone = provider.pk
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        provider.delete()  # (the collector has deleted its history by now)
        entry(gone)  # what a racing apply committed meanwhile
        entry(other.pk)
        assert HistoryEntry.objects.filter(cloudprovider_id=gone).count() == 1
    assert callbacks
    assert list(HistoryEntry.objects.values_list("cloudprovider_id", flat=True)) == [other.pk]


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_client_config_never_in_any_response(client, admin_api, provider_factory, accept):
    """Every answer (JSON, browsable HTML, OPTIONS, schema) for an admin, searched
    for the distinctive secret value."""
    from django.contrib.auth.models import User

    # given
    created = create(admin_api)
    assert created.status_code == 201
    assert SECRET not in created.content.decode()
    pk = created.json()["id"]
    provider_factory(name="second", cloud_sync_driver="fake.configured", client_config=CONFIG)
    User.objects.create_superuser("html-admin", password="pw-html-admin")
    client.login(username="html-admin", password="pw-html-admin")
    urls = [
        "/api/",
        "/api/cloud-providers/",
        f"/api/cloud-providers/{pk}/",
        "/api/cloud-providers/?search=waw1",
    ]
    bodies = []
    # when
    for url in urls:
        for api in (client, admin_api):
            response = api.get(url, HTTP_ACCEPT=accept)
            assert response.status_code == 200, (url, response.status_code)
            bodies.append((url, response.content.decode()))
        bodies.append((url, admin_api.options(url, HTTP_ACCEPT=accept).content.decode()))
    for url in ("/api/docs/", "/api/schema/", "/api/schema/?format=json"):
        response = admin_api.get(url)
        assert response.status_code == 200
        bodies.append((url, response.content.decode()))
    browsable = client.get(f"/api/cloud-providers/{pk}/?format=api")
    assert browsable.status_code == 200 and b"<form" in browsable.content
    bodies.append(("format=api", browsable.content.decode()))
    for method in ("patch", "put"):
        response = getattr(client, method)(
            f"/api/cloud-providers/{pk}/",
            {"name": "waw1", "client_config": CONFIG, "cloud_sync_driver": "fake.configured"},
            content_type="application/json",
            HTTP_ACCEPT=accept,
        )
        assert response.status_code == 200
        bodies.append((method, response.content.decode()))
    rotated = client.post(f"/api/cloud-providers/{pk}/rotate-secret/", HTTP_ACCEPT=accept)
    assert rotated.status_code == 200
    bodies.append(("rotate", rotated.content.decode()))
    invalid = {
        "name": "waw1",
        "cloud_sync_driver": "fake.configured",
        "client_config": {"password": SECRET},
    }
    for method, url in (
        ("patch", f"/api/cloud-providers/{pk}/"),
        ("put", f"/api/cloud-providers/{pk}/"),
        ("post", "/api/cloud-providers/"),
    ):
        bad = getattr(client, method)(
            url, invalid, content_type="application/json", HTTP_ACCEPT=accept
        )
        assert bad.status_code == 400
        bodies.append((f"invalid {method}", bad.content.decode()))
    # then
    if accept == "text/html":
        assert any("<html" in body for _, body in bodies)
    for where, body in bodies:
        assert SECRET not in body, where
    assert CloudProvider.objects.get(pk=pk).client_config["password"] == SECRET


def test_endpoint_secret_not_in_reads(admin_api, provider):
    for url in ("/api/cloud-providers/", f"/api/cloud-providers/{provider.pk}/"):
        body = admin_api.get(url).content.decode()
        assert provider.endpoint_secret not in body
        assert "endpoint_secret" not in body
