"""Every row of the endpoint contract (DESIGN §6), against the real Redis broker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.models import Event
from tests.broker import broker_at, queued_messages
from tests.endpoint.common import MESSAGE, endpoint_path

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_queue")]


def post(client, provider, body, secret=None, **extra):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    if secret is None:
        secret = provider.endpoint_secret
    if secret:
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {secret}")
    return client.post(endpoint_path(provider), data=data, content_type=extra.pop("content_type", "application/json"), **extra)


def test_accepted_message_is_in_redis_and_nothing_in_the_database(client, provider):
    with CaptureQueriesContext(connection) as queries:
        response = post(client, provider, MESSAGE)
    assert response.status_code == 202
    assert response.json()["queued"] == 1 and response.json()["task_id"]
    messages = queued_messages()
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "sync.tasks.ingest"
    assert not [q for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert Event.objects.count() == 0


def test_batch_reports_its_count(client, provider):
    response = post(client, provider, [MESSAGE, {**MESSAGE, "message_id": "m-2"}, {"x": 1}])
    assert response.status_code == 202
    assert response.json()["queued"] == 3
    assert len(queued_messages()) == 1  # one task carries the whole batch


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"42", "JSON object"),
        (b'"text"', "JSON object"),
        (b"[]", "empty JSON array"),
    ],
)
def test_bad_bodies_are_400_with_a_reason(client, provider, body, needle):
    response = post(client, provider, body)
    assert response.status_code == 400
    assert needle in response.json()["error"]
    assert queued_messages() == []


def test_body_over_the_limit_is_413(client, provider, settings):
    settings.CLOUDSYNC_MAX_BODY_BYTES = 100
    response = post(client, provider, {"pad": "x" * 200})
    assert response.status_code == 413
    assert queued_messages() == []
    assert post(client, provider, {"pad": "x" * 50}).status_code == 202


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic !!!", "Token abc"])
def test_missing_or_wrong_credentials_are_401(client, provider, auth):
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    response = post(client, provider, MESSAGE, secret="", **extra)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert queued_messages() == []


def test_another_providers_secret_is_401(client, provider_factory):
    a, b = provider_factory(), provider_factory()
    assert post(client, a, MESSAGE, secret=b.endpoint_secret).status_code == 401
    assert post(client, a, MESSAGE, secret=a.endpoint_secret).status_code == 202


def test_hmac_signature_basic_and_query_token_are_accepted(client, provider):
    body = json.dumps(MESSAGE).encode()
    secret = provider.endpoint_secret.encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert post(client, provider, body, secret="", HTTP_X_CLOUDSYNC_SIGNATURE=signature).status_code == 202
    bad = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    assert post(client, provider, body, secret="", HTTP_X_CLOUDSYNC_SIGNATURE=bad).status_code == 401
    basic = base64.b64encode(b"cloudsync:" + secret).decode()
    assert post(client, provider, body, secret="", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 202
    response = client.post(f"{endpoint_path(provider)}?token={provider.endpoint_secret}", data=body, content_type="text/plain; charset=UTF-8")
    assert response.status_code == 202
    response = client.post(f"{endpoint_path(provider)}?token=nope", data=body, content_type="application/json")
    assert response.status_code == 401


def test_content_type_is_not_trusted(client, provider):
    assert post(client, provider, MESSAGE, content_type="text/plain; charset=UTF-8").status_code == 202
    assert post(client, provider, MESSAGE, content_type="").status_code == 202


def test_unknown_provider_is_404(client):
    response = client.post("/cloud-sync/provider/999999/", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert "999999" in response.json()["error"]


def test_disabled_provider_is_409_and_nothing_is_queued(client, provider_factory):
    provider = provider_factory(cloud_sync_enabled=False)
    response = post(client, provider, MESSAGE)
    assert response.status_code == 409
    assert queued_messages() == []


def test_driver_not_installed_is_501(client, provider_factory):
    provider = provider_factory()
    type(provider).objects.filter(pk=provider.pk).update(cloud_sync_driver="vanished.driver")
    response = post(client, provider, MESSAGE)
    assert response.status_code == 501
    assert "vanished.driver" in response.json()["error"]


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405(client, provider, method):
    response = getattr(client, method)(endpoint_path(provider))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_broker_unreachable_is_503_with_retry_after(client, provider):
    with broker_at("redis://127.0.0.1:1/0"):
        response = post(client, provider, MESSAGE)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "nothing was queued" in response.json()["error"]
    assert queued_messages() == []
    assert post(client, provider, MESSAGE).status_code == 202  # and it recovers


def test_an_empty_array_checks_credentials_and_queues_nothing(client, provider_factory):
    """What ``cloudsync-relay --check`` relies on: the provider, the
    credentials, sync enabled and the driver installed are checked before the
    body, and an authenticated ``[]`` queues nothing (400 "empty JSON array")."""
    provider = provider_factory()
    assert post(client, provider, b"[]").json()["error"] == "empty JSON array: nothing to queue"
    assert post(client, provider, b"[]", secret="wrong").status_code == 401
    disabled = provider_factory(cloud_sync_enabled=False)
    assert post(client, disabled, b"[]").status_code == 409
    missing = provider_factory()
    type(missing).objects.filter(pk=missing.pk).update(cloud_sync_driver="vanished.driver")
    assert post(client, missing, b"[]").status_code == 501
    assert queued_messages() == []
