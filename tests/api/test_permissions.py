"""Permission matrix: anonymous / reader (view perms) / operator (view +
change_event + add_syncrun + change_syncrun) / admin (superuser), per endpoint."""

from __future__ import annotations

import pytest
from django.utils import timezone

from sync.models import Event, SyncRun

from .conftest import READ_ENDPOINTS, ROLES

ANON, READER, OPERATOR, ADMIN = ROLES


@pytest.fixture
def objects(provider_factory, host_factory):
    provider = provider_factory(
        cloud_sync_driver="fake.configured", client_config={"auth_url": "u", "password": "p"}
    )
    host = host_factory(provider, ips=("10.0.0.1",))
    event = Event.objects.create(
        cloudprovider=provider, key="e1", status="dead", received_at=timezone.now()
    )
    run = SyncRun.objects.create(
        cloudprovider=provider, kind="dry_run", status="planned", plan={"host": [{"op": "delete"}]}
    )
    ids = {
        "cloud-providers": provider.pk,
        "cloud-projects": host.project_id,
        "cloud-flavors": host.cloudflavor_id,
        "cloud-images": host.image_id,
        "cloud-hosts": host.pk,
        "events": event.pk,
        "sync-runs": run.pk,
    }
    return provider, event, run, ids


def expect(role: str, allowed: set[str], ok: int) -> int:
    if role == ANON:
        return 401
    return ok if role in allowed else 403


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", READ_ENDPOINTS)
def test_reads(client_for, objects, role, endpoint):
    ids = objects[3]
    api = client_for(role)
    want = expect(role, {READER, OPERATOR, ADMIN}, 200)
    assert api.get(f"/api/{endpoint}/").status_code == want
    assert api.get(f"/api/{endpoint}/{ids[endpoint]}/").status_code == want


@pytest.mark.parametrize("role", ROLES)
def test_anonymous_gets_401_with_challenge(client_for, objects, role):
    response = client_for(role).get("/api/cloud-hosts/")
    if role == ANON:
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"


def test_authenticated_without_view_permission_is_403(client_for, objects, django_user_model):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user("nobody")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    for endpoint in READ_ENDPOINTS:
        assert api.get(f"/api/{endpoint}/").status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_provider_writes(client_for, objects, role):
    provider = objects[0]
    api = client_for(role)
    body = {
        "name": f"new-{role}",
        "cloud_sync_driver": "fake.configured",
        "client_config": {"auth_url": "u", "password": "p"},
    }
    detail = f"/api/cloud-providers/{provider.pk}/"
    assert api.post("/api/cloud-providers/", body, format="json").status_code == expect(
        role, {ADMIN}, 201
    )
    assert api.patch(detail, {"name": "renamed"}, format="json").status_code == expect(
        role, {ADMIN}, 200
    )
    assert api.post(f"{detail}rotate-secret/").status_code == expect(role, {ADMIN}, 200)
    assert api.delete(detail).status_code == expect(role, {ADMIN}, 204)


@pytest.mark.parametrize("role", ROLES)
def test_replays(client_for, objects, role):
    event = objects[1]
    api = client_for(role)
    assert api.post(f"/api/events/{event.pk}/replay/").status_code == expect(
        role, {OPERATOR, ADMIN}, 202
    )
    Event.objects.filter(pk=event.pk).update(status="dead")
    assert api.post("/api/events/replay/").status_code == expect(role, {OPERATOR, ADMIN}, 202)


@pytest.mark.parametrize("role", ROLES)
def test_sync_triggers(client_for, objects, role):
    provider, _, run, _ = objects
    api = client_for(role)
    start = api.post("/api/sync-runs/", {"provider": provider.pk, "kind": "full"}, format="json")
    assert start.status_code == expect(role, {OPERATOR, ADMIN}, 202)
    assert api.post(f"/api/sync-runs/{run.pk}/apply/").status_code == expect(
        role, {OPERATOR, ADMIN}, 202
    )


@pytest.mark.parametrize("endpoint", READ_ENDPOINTS[1:5])
def test_inventory_is_read_only_even_for_admins(admin_api, objects, endpoint):
    ids = objects[3]
    assert admin_api.post(f"/api/{endpoint}/", {}, format="json").status_code == 405
    assert (
        admin_api.patch(f"/api/{endpoint}/{ids[endpoint]}/", {}, format="json").status_code == 405
    )
    assert admin_api.delete(f"/api/{endpoint}/{ids[endpoint]}/").status_code == 405


def test_session_auth_works(client, objects, django_user_model):
    django_user_model.objects.create_superuser("sess", password="pw-sess-123")
    assert client.get("/api/cloud-hosts/").status_code == 401
    client.login(username="sess", password="pw-sess-123")
    assert client.get("/api/cloud-hosts/").status_code == 200


@pytest.mark.parametrize("endpoint", READ_ENDPOINTS)
def test_browsable_api_renders(client, objects, django_user_model, endpoint):
    django_user_model.objects.create_superuser("browser", password="pw-browser-123")
    client.login(username="browser", password="pw-browser-123")
    ids = objects[3]
    for url in (f"/api/{endpoint}/", f"/api/{endpoint}/{ids[endpoint]}/"):
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        assert b"<html" in response.content
