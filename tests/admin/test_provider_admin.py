"""CloudProvider admin: write-only config, secret shown once, operator actions."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from sync.models import CloudProvider, SyncRun
from tests.admin.conftest import FAKE, messages_of

pytestmark = pytest.mark.django_db

CONFIG_PASSWORD = "Pw-7f3a9c1e-DO-NOT-LEAK"
CONFIG_USER = "user-b41d2e77-DO-NOT-LEAK"


def change_url(provider: CloudProvider) -> str:
    return reverse("admin:sync_cloudprovider_change", args=[provider.pk])


def rotate_url(provider: CloudProvider) -> str:
    return reverse("admin:sync_cloudprovider_rotate_secret", args=[provider.pk])


ADD_URL = "/admin/sync/cloudprovider/add/"
LIST_URL = "/admin/sync/cloudprovider/"


def form_data(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "region-one",
        "cloud_sync_enabled": "on",
        "cloud_sync_driver": "noop",
        "client_config": "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.fixture
def secret_provider(provider_factory):
    return provider_factory(client_config={"password": CONFIG_PASSWORD, "username": CONFIG_USER})


def test_change_page_never_shows_config_values_or_secret(admin_client, secret_provider):
    html = admin_client.get(change_url(secret_provider)).content.decode()

    assert CONFIG_PASSWORD not in html
    assert CONFIG_USER not in html
    assert secret_provider.endpoint_secret not in html
    # ...but says which keys are set, that a secret exists, and where to rotate it.
    assert "<code>password</code>" in html and "<code>username</code>" in html
    assert "leave empty to keep the current configuration" in html.lower()
    assert "•••• (set)" in html
    assert rotate_url(secret_provider) in html
    assert f"http://testserver/cloud-sync/provider/{secret_provider.pk}/" in html


def test_list_and_history_pages_never_show_config_or_secret(admin_client, secret_provider):
    for url in (LIST_URL, change_url(secret_provider).replace("/change/", "/history/")):
        html = admin_client.get(url).content.decode()
        assert CONFIG_PASSWORD not in html
        assert CONFIG_USER not in html
        assert secret_provider.endpoint_secret not in html
    listing = admin_client.get(LIST_URL).content.decode()
    assert f"http://testserver/cloud-sync/provider/{secret_provider.pk}/" in listing


def test_add_shows_endpoint_and_secret_once(admin_client):
    response = admin_client.post(
        ADD_URL, form_data(client_config=json.dumps({"token": CONFIG_PASSWORD})), follow=True
    )

    assert response.status_code == 200
    provider = CloudProvider.objects.get(name="region-one")
    assert provider.client_config == {"token": CONFIG_PASSWORD}
    html = response.content.decode()
    assert provider.endpoint_secret in html
    assert f"http://testserver/cloud-sync/provider/{provider.pk}/" in html
    assert html.count(provider.endpoint_secret) == 1
    assert CONFIG_PASSWORD not in html

    # Never again: neither on the list nor on the change page.
    for url in (LIST_URL, change_url(provider)):
        again = admin_client.get(url).content.decode()
        assert provider.endpoint_secret not in again
        assert CONFIG_PASSWORD not in again


def test_add_with_save_and_continue_shows_secret_on_the_change_page(admin_client):
    response = admin_client.post(ADD_URL, form_data(_continue="1"), follow=True)

    provider = CloudProvider.objects.get(name="region-one")
    assert response.redirect_chain[-1][0] == change_url(provider)
    assert response.content.decode().count(provider.endpoint_secret) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"password": "Typed-SECRET-42", ', "Invalid JSON"),
        ('["Typed-SECRET-42"]', "must be a JSON object"),
    ],
)
def test_invalid_json_is_a_form_error_and_saves_nothing(admin_client, raw, expected):
    response = admin_client.post(ADD_URL, form_data(client_config=raw))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert expected in " ".join(form.errors["client_config"])
    assert not CloudProvider.objects.exists()
    assert "Typed-SECRET-42" not in response.content.decode()  # not echoed back


def test_driver_config_errors_appear_on_the_field(admin_client, fake_driver):
    response = admin_client.post(
        ADD_URL, form_data(cloud_sync_driver=fake_driver, client_config='{"auth_url": "x"}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["client_config"] == ["password: this key is required"]
    assert not CloudProvider.objects.exists()


def test_enabled_without_driver_is_an_error_on_the_driver(admin_client):
    response = admin_client.post(ADD_URL, form_data(cloud_sync_driver=""))

    errors = response.context["adminform"].form.errors
    assert "A driver is required" in errors["cloud_sync_driver"][0]
    assert not CloudProvider.objects.exists()


def test_driver_choices_are_the_registered_drivers(admin_client, fake_driver):
    choices = dict(
        admin_client.get(ADD_URL).context["adminform"].form.fields["cloud_sync_driver"].choices
    )
    assert "" in choices and "noop" in choices and fake_driver in choices
    response = admin_client.post(ADD_URL, form_data(cloud_sync_driver="no-such-driver"))
    assert "cloud_sync_driver" in response.context["adminform"].form.errors
    assert not CloudProvider.objects.exists()


def test_empty_config_keeps_the_stored_one_and_json_replaces_it(admin_client, secret_provider):
    data = form_data(name=secret_provider.name)
    response = admin_client.post(change_url(secret_provider), data)
    assert response.status_code == 302
    secret_provider.refresh_from_db()
    assert secret_provider.client_config == {"password": CONFIG_PASSWORD, "username": CONFIG_USER}

    data["client_config"] = '{"region": "two"}'
    assert admin_client.post(change_url(secret_provider), data).status_code == 302
    secret_provider.refresh_from_db()
    assert secret_provider.client_config == {"region": "two"}


def test_switching_driver_validates_the_stored_config(admin_client, secret_provider, fake_driver):
    response = admin_client.post(
        change_url(secret_provider), form_data(name=secret_provider.name, cloud_sync_driver=FAKE)
    )

    assert response.status_code == 200
    assert (
        "auth_url: this key is required"
        in response.context["adminform"].form.errors["client_config"]
    )
    html = response.content.decode()
    assert CONFIG_PASSWORD not in html and CONFIG_USER not in html
    secret_provider.refresh_from_db()
    assert secret_provider.cloud_sync_driver == "noop"


def test_rotate_changes_the_secret_and_shows_the_new_one_once(admin_client, provider):
    old = provider.endpoint_secret
    confirm = admin_client.get(rotate_url(provider))
    assert confirm.status_code == 200
    assert old not in confirm.content.decode()
    provider.refresh_from_db()
    assert provider.endpoint_secret == old  # GET changes nothing

    response = admin_client.post(rotate_url(provider), follow=True)

    provider.refresh_from_db()
    new = provider.endpoint_secret
    assert new and new != old
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == change_url(provider)
    assert html.count(new) == 1 and old not in html
    assert new not in admin_client.get(change_url(provider)).content.decode()


def test_rotate_requires_csrf(admin_user, provider):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    old = provider.endpoint_secret

    assert client.post(rotate_url(provider)).status_code == 403

    provider.refresh_from_db()
    assert provider.endpoint_secret == old


def test_rotate_requires_change_permission(client, django_user_model, provider):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_cloudprovider"))
    client.force_login(user)
    old = provider.endpoint_secret

    assert client.post(rotate_url(provider)).status_code == 403
    provider.refresh_from_db()
    assert provider.endpoint_secret == old


def action(admin_client, name: str, *providers: CloudProvider):
    return admin_client.post(
        LIST_URL, {"action": name, "_selected_action": [p.pk for p in providers]}, follow=True
    )


def test_sync_now_queues_a_run_and_reports_the_lock(
    admin_client, provider_factory, fake_driver, published
):
    provider = provider_factory(
        cloud_sync_driver=fake_driver, client_config={"auth_url": "u", "password": "p"}
    )

    first = action(admin_client, "sync_now", provider)
    run = SyncRun.objects.get(cloudprovider=provider)
    assert run.kind == "full" and run.triggered_by == "admin:admin"
    assert messages_of(first) == [f"{provider}: Full sync queued (run #{run.pk})."]

    second = action(admin_client, "sync_now", provider)
    [text] = messages_of(second)
    assert "already running" in text and f"run #{run.pk}" in text
    assert SyncRun.objects.filter(cloudprovider=provider).count() == 1


def test_dry_run_and_catch_up_errors_are_messages(admin_client, provider, published):
    [dry] = messages_of(action(admin_client, "dry_run", provider))
    [catch] = messages_of(action(admin_client, "catch_up", provider))

    assert "does not support full sync" in dry
    assert "does not support catch-up" in catch
    assert not SyncRun.objects.exists()


def test_test_connection_reports_result_and_precise_errors(
    admin_client, provider_factory, fake_driver
):
    ok = provider_factory(
        cloud_sync_driver=fake_driver, client_config={"auth_url": "u", "password": "p"}
    )
    auth = provider_factory(
        cloud_sync_driver=fake_driver,
        client_config={"auth_url": "u", "password": "p", "mode": "auth"},
    )
    net = provider_factory(
        cloud_sync_driver=fake_driver,
        client_config={"auth_url": "u", "password": "p", "mode": "network"},
    )
    noop = provider_factory()

    texts = messages_of(action(admin_client, "test_connection", ok, auth, net, noop))

    by_provider = {
        p.name: t for p in (ok, auth, net, noop) for t in texts if t.startswith(p.name + ":")
    }
    assert by_provider[ok.name] == f'{ok.name}: connection OK: {{"flavors": 2, "servers": 3}}'
    assert "authentication failed: 401 from keystone" in by_provider[auth.name]
    assert "network error: connect timeout" in by_provider[net.name]
    assert "cannot test a connection" in by_provider[noop.name]


def test_delete_page_summarizes_and_deletes_the_cascade(admin_client, provider):
    from django.utils import timezone

    from sync.models import CloudHost, Event

    CloudHost.objects.create(cloudprovider=provider, host_id="h-1")
    Event.objects.create(cloudprovider=provider, key="k-1", received_at=timezone.now())
    url = change_url(provider).replace("/change/", "/delete/")

    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.context["perms_lacking"] == set()
    counts = dict(page.context["model_count"])
    assert counts["cloud hosts"] == 1 and counts["events"] == 1
    assert provider.endpoint_secret not in page.content.decode()

    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not CloudProvider.objects.filter(pk=provider.pk).exists()
    assert not CloudHost.all_objects.filter(host_id="h-1").exists()
