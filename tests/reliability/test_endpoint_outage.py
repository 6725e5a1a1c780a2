"""The endpoint while the database is down: providers it saw recently are
still authenticated from its cache and queued (202); anything it cannot
decide is a 503 with Retry-After, never a 500. Through Django and through the
production WSGI fast path. Too-deep bodies are a 400."""

from __future__ import annotations

import json

import pytest

from tests.broker import queued_messages
from tests.endpoint.common import MESSAGE, endpoint_path
from tests.endpoint.test_wsgi_fast_path import call
from tests.reliability.conftest import database_down

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_queue")]


def post(provider, body=MESSAGE, secret=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(endpoint_path(provider), raw,
                authorization=f"Bearer {secret or provider.endpoint_secret}")


@pytest.mark.parametrize("path", ["django", "wsgi"])
def test_a_recently_seen_provider_is_still_accepted_while_the_database_is_down(
    client, provider_factory, settings, path
):
    # given a provider the endpoint has seen, and whose cache entry is no longer fresh
    seen = provider_factory()
    unseen = provider_factory()
    settings.CLOUDSYNC_PROVIDER_CACHE_SECONDS = 0
    assert post(seen)[0] == 202

    def send(provider, secret=None):
        if path == "wsgi":
            status, headers, content = post(provider, secret=secret)
            return status, headers, json.loads(content)
        response = client.post(
            endpoint_path(provider), data=json.dumps(MESSAGE),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret or provider.endpoint_secret}",
        )
        return response.status_code, response.headers, response.json()

    # when the database goes away
    with database_down():
        ok = send(seen)
        wrong_secret = send(seen, secret="not-the-secret")
        unknown = send(unseen)
    # then the known provider is queued, with its secret still checked
    assert ok[0] == 202, ok
    assert wrong_secret[0] == 401
    # and the one it never saw is a 503 with Retry-After, nothing queued
    assert unknown[0] == 503 and int(unknown[1]["Retry-After"]) > 0
    assert "nothing was queued" in unknown[2]["error"]
    assert len(queued_messages()) == 2  # the first post and the one during the outage
    # and once the database is back, everything is normal again
    assert send(unseen)[0] == 202


def test_a_cache_entry_older_than_the_stale_limit_is_not_trusted(provider, settings):
    settings.CLOUDSYNC_PROVIDER_CACHE_SECONDS = 0
    settings.CLOUDSYNC_PROVIDER_STALE_SECONDS = 0
    assert post(provider)[0] == 202
    with database_down():
        status, headers, _ = post(provider)
    assert status == 503 and "Retry-After" in headers


def test_a_provider_changed_in_this_process_is_read_again_at_once(provider, settings):
    settings.CLOUDSYNC_PROVIDER_CACHE_SECONDS = 3600
    assert post(provider)[0] == 202
    provider.cloud_sync_enabled = False
    provider.save()
    assert post(provider)[0] == 409


@pytest.mark.parametrize("depth, expected", [(50, 202), (101, 400), (1000, 400), (100_000, 400)])
def test_nesting_deeper_than_the_limit_is_a_400(provider, depth, expected):
    body = ('{"message_id": "deep", "x": ' + "[" * depth + "]" * depth + "}").encode()
    status, _, content = post(provider, body=body)
    assert status == expected, content
    if expected == 400:
        assert "nested deeper than 100 levels" in json.loads(content)["error"]
