"""The endpoint as real producers call it (README "Connecting a producer"), and that no
secret ever reaches a log.

* SNS HTTP(S) subscriptions: JSON sent as ``text/plain; charset=UTF-8`` with
  ``x-amz-sns-message-type``, credentials only as Basic from the URL.
* EventBridge API destinations: ``Authorization: Bearer <secret>`` (API-key
  connection) or Basic.
* Ceilometer's HttpPublisher: ``Content-type: application/json``, Basic from
  the URL userinfo, or extra query parameters kept in the URL (``?token=``).

The logging test serves the requests with Django's own runserver handler
(``django.core.servers.basehttp``), the one that writes ``django.server``
access lines, and captures every logger at DEBUG.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
import requests
from django.http import HttpResponse
from django.test import Client

from sync.models import CloudProvider
from tests.broker import queued_messages
from tests.endpoint.common import endpoint_path

pytestmark = pytest.mark.usefixtures("empty_queue")

SNS_NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "Subject": "My First Message",
    "Message": json.dumps({"id": "evt-1", "detail-type": "EC2 Instance State-change Notification"}),
    "Timestamp": "2012-05-02T00:54:06.655Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLE",
    "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-x.pem",
    "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
}
SNS_CONFIRMATION = {
    **SNS_NOTIFICATION,
    "Type": "SubscriptionConfirmation",
    "Token": "2336412f37",
    "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post_sns(client: Client, provider: CloudProvider, body: dict = SNS_NOTIFICATION,
             **headers: str) -> HttpResponse:
    """POST ``body`` the way SNS delivers it: JSON as ``text/plain; charset=UTF-8``."""
    return client.post(endpoint_path(provider), data=json.dumps(body),
                       content_type="text/plain; charset=UTF-8", **headers)


# -- SNS and EventBridge through the Django test client ------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "message_type,body",
    [
        ("Notification", SNS_NOTIFICATION),
        ("SubscriptionConfirmation", SNS_CONFIRMATION),
        ("UnsubscribeConfirmation", {**SNS_CONFIRMATION, "Type": "UnsubscribeConfirmation"}),
    ],
)
def test_sns_text_plain_delivery_with_basic_auth_is_queued(client, provider, message_type, body):
    """SNS sends JSON as text/plain and can only authenticate with the
    user:password of the subscription URL; the body is queued untouched
    (unwrapping and confirming the subscription is the AWS driver's job)."""
    response = post_sns(
        client,
        provider,
        body,
        HTTP_AUTHORIZATION=basic("sns", provider.endpoint_secret),
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=message_type,
        HTTP_X_AMZ_SNS_MESSAGE_ID=body["MessageId"],
        HTTP_X_AMZ_SNS_TOPIC_ARN=body["TopicArn"],
        HTTP_USER_AGENT="Amazon Simple Notification Service Agent",
    )
    assert response.status_code == 202, response.content
    assert response.json()["queued"] == 1
    [message] = queued_messages()
    assert message["headers"]["task"] == "sync.tasks.ingest"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [
        None,
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_sns_delivery_without_valid_basic_auth_is_refused(client, provider, credentials):
    extra = {"HTTP_AUTHORIZATION": credentials} if credentials else {}
    response = post_sns(client, provider, HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert queued_messages() == []


@pytest.mark.django_db
def test_sns_basic_with_the_wrong_password_or_another_providers_secret(client, provider_factory):
    mine, other = provider_factory(), provider_factory()
    for password in ("wrong", other.endpoint_secret, mine.endpoint_secret + "x", ""):
        response = post_sns(client, mine, HTTP_AUTHORIZATION=basic("sns", password))
        assert response.status_code == 401, password
    assert queued_messages() == []


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_eventbridge_api_destination(client, provider, scheme):
    """An API destination's connection: API-key auth with header
    ``Authorization`` = ``Bearer <secret>``, or Basic auth."""
    event = load_eventbridge_event()
    auth = (
        f"Bearer {provider.endpoint_secret}"
        if scheme == "bearer"
        else basic("eventbridge", provider.endpoint_secret)
    )
    response = client.post(
        endpoint_path(provider),
        data=json.dumps(event),
        content_type="application/json; charset=utf-8",
        HTTP_AUTHORIZATION=auth,
        HTTP_USER_AGENT="Amazon/EventBridge/ApiDestinations",
    )
    assert response.status_code == 202, response.content
    assert len(queued_messages()) == 1


def load_eventbridge_event() -> dict:
    from tests.fixtures import load_json

    return load_json("aws/powertools-lambda-python/eventBridgeEvent.json")


# -- no secret in any log ------------------------------------------------------------


def _requests(base: str, provider, secret: str) -> list[tuple[str, dict]]:
    path = f"{base}{endpoint_path(provider)}"
    host = base.removeprefix("http://")
    return [
        ("bearer", {"url": path, "headers": {"Authorization": f"Bearer {secret}"}}),
        ("basic", {"url": path, "headers": {"Authorization": basic("cloudsync", secret)}}),
        (
            "userinfo",
            {"url": f"http://cloudsync:{secret}@{host}{endpoint_path(provider)}"},
        ),
        ("token", {"url": f"{path}?token={secret}"}),
        ("token+other", {"url": f"{path}?a=1&token={secret}&b=2"}),
    ]


def _leaks(records: list[logging.LogRecord], secret: str) -> list[str]:
    found = []
    for record in records:
        if record.name.startswith("urllib3"):  # the test's own HTTP client, not the server
            continue
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if secret in text or secret in repr(record.args):
            found.append(f"{record.name} {record.levelname}: {text}")
    return found




@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "form,valid",
    [
        ("bearer", True),
        ("bearer", False),
        ("basic", True),
        ("basic", False),
        ("userinfo", True),
        ("userinfo", False),
        ("token", True),
        ("token", False),
        ("token+other", False),
    ],
)
def test_no_secret_in_any_log(runserver, provider_factory, caplog, form, valid):
    provider = provider_factory()
    secret = provider.endpoint_secret if valid else "wrong-" + provider.endpoint_secret[:20]
    caplog.set_level(logging.DEBUG)  # root: everything
    for name in ("django.request", "django.server", "sync", "sync.endpoint"):
        caplog.set_level(logging.DEBUG, logger=name)
    [kwargs] = [kw for f, kw in _requests(runserver, provider, secret) if f == form]
    response = requests.post(json={"message_id": "m-1", "event_type": "x"}, timeout=5, **kwargs)
    assert response.status_code == (202 if valid else 401), response.text
    # the access line is written after the response went out: wait for it
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(
        r.name == "django.server" for r in caplog.records
    ):
        time.sleep(0.02)
    assert any(r.name == "django.server" for r in caplog.records), "capture is not working"
    assert not _leaks(caplog.records, secret)
    # the real secret must not show either when a wrong one was sent
    assert not _leaks(caplog.records, provider.endpoint_secret)


@pytest.mark.django_db(transaction=True)
def test_no_secret_in_the_log_of_a_503(runserver, provider_factory, caplog):
    """The broker-unavailable error is logged (ERROR) with the exception text."""
    from tests.broker import broker_at

    provider = provider_factory()
    caplog.set_level(logging.DEBUG)
    with broker_at("redis://:broker-password@127.0.0.1:1/0"):
        response = requests.post(
            f"{runserver}{endpoint_path(provider)}",
            headers={"Authorization": f"Bearer {provider.endpoint_secret}"},
            json={"message_id": "m-1"},
            timeout=10,
        )
    assert response.status_code == 503
    assert not _leaks(caplog.records, provider.endpoint_secret)
    assert not _leaks(caplog.records, "broker-password")


@pytest.mark.django_db
def test_401_challenge_offers_basic_for_sns(client, provider):
    response = post_sns(client, provider, HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification")
    assert response.status_code == 401
    challenges = ", ".join(
        response.headers.getlist("WWW-Authenticate")
        if hasattr(response.headers, "getlist")
        else [response["WWW-Authenticate"]]
    )
    assert "basic" in challenges.lower()
