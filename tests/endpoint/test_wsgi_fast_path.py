"""The production WSGI application (gunicorn's ``project.wsgi``) serves webhook
POSTs through its fast path; the contract is the same as through Django."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest

from project.wsgi import application
from tests.broker import broker_at, queued_messages
from tests.endpoint.common import endpoint_path

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_queue")]


def call(path: str, body: bytes = b"", method: str = "POST", host: str = "127.0.0.1", **headers):
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update({
        "REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_HOST": host,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
    })
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen: dict = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(response_headers)

    content = b"".join(application(environ, start_response))
    return seen["status"], seen["headers"], content


def test_accepted_and_queued(provider):
    body = json.dumps({"message_id": "m-1"}).encode()
    status, headers, content = call(endpoint_path(provider), body,
                                    authorization=f"Bearer {provider.endpoint_secret}")
    assert status == 202 and json.loads(content)["queued"] == 1
    assert headers["Content-Type"] == "application/json"
    assert len(queued_messages()) == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [("no-auth", 401), ("unknown", 404), ("not-json", 400), ("bad-host", 400), ("get", 405)],
)
def test_errors_match_the_django_path(provider, case, expected):
    path = f"/cloud-sync/provider/{999999 if case == 'unknown' else provider.pk}/"
    auth = {} if case == "no-auth" else {"authorization": f"Bearer {provider.endpoint_secret}"}
    status, headers, content = call(
        path, b"{nope" if case == "not-json" else b"{}",
        method="GET" if case == "get" else "POST",
        host="evil.example" if case == "bad-host" else "127.0.0.1", **auth,
    )
    assert status == expected
    if case != "get":
        assert json.loads(content)["status"] == expected
    assert queued_messages() == []


def test_broker_down_is_503(provider):
    with broker_at("redis://127.0.0.1:1/0"):
        status, headers, _ = call(endpoint_path(provider), b"{}",
                                  authorization=f"Bearer {provider.endpoint_secret}")
    assert status == 503 and headers["Retry-After"] == "30"


def test_other_paths_go_through_django(provider):
    status, _, content = call("/healthz", method="GET")
    assert status == 200 and json.loads(content)["status"] == "ok"


def test_fast_path_sets_length_and_nosniff(provider):
    status, headers, content = call(endpoint_path(provider), b"{}",
                                    authorization=f"Bearer {provider.endpoint_secret}")
    assert status == 202
    assert headers["Content-Length"] == str(len(content))
    assert headers["X-Content-Type-Options"] == "nosniff"
