"""Who may read /metrics: loopback by default, CLOUDSYNC_METRICS_ALLOWED_NETWORKS,
or a bearer token (CLOUDSYNC_METRICS_TOKEN); 401 / 403 otherwise."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.7"


def get(client, address: str, token: str | None = None):
    extra = {"REMOTE_ADDR": address}
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get("/metrics", **extra)


def test_by_default_loopback_reads_and_other_addresses_are_forbidden(client):
    for address in ("127.0.0.1", "::1"):
        response = get(client, address)
        assert response.status_code == 200, address
        assert b"cloudsync_queue_length" in response.content
    response = get(client, OUTSIDE)
    assert response.status_code == 403
    assert "CLOUDSYNC_METRICS_ALLOWED_NETWORKS" in response.json()["error"]
    assert get(client, OUTSIDE, token="anything").status_code == 403  # no token configured


def test_a_token_opens_it_from_anywhere_and_a_missing_or_wrong_one_is_401(client, settings):
    settings.CLOUDSYNC_METRICS_TOKEN = "s3cret-token"
    assert get(client, OUTSIDE, token="s3cret-token").status_code == 200
    for token in (None, "wrong", ""):
        response = get(client, OUTSIDE, token=token)
        assert response.status_code == 401, token
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert get(client, "127.0.0.1").status_code == 200  # loopback still allowed


def test_allowed_networks_are_cidrs_and_replace_the_default(client, settings):
    settings.CLOUDSYNC_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]
    for address in ("10.1.2.3", "::ffff:10.1.2.3", "2001:db8::5"):
        assert get(client, address).status_code == 200, address
    for address in ("127.0.0.1", "11.0.0.1", OUTSIDE, "not-an-address"):
        assert get(client, address).status_code == 403, address


def test_no_network_and_no_token_closes_it(client, settings):
    settings.CLOUDSYNC_METRICS_ALLOWED_NETWORKS = []
    assert get(client, "127.0.0.1").status_code == 403


def test_only_get(client):
    assert client.post("/metrics").status_code == 405
