"""SNS envelopes: SubscriptionConfirmation visits SubscribeURL (a local HTTP
server here), UnsubscribeConfirmation is ignored, Notification is unwrapped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.drivers.aws import AwsEc2Driver
from sync.drivers.aws.sns import confirm_allowed
from sync.drivers.base import BadPayload, NetworkError
from tests.local_http import LocalHttpServer, QuietHandler

DRIVER = AwsEc2Driver()
LOCAL = {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:5000"}
REAL = {"region_name": "us-east-1"}


class Subscriber(LocalHttpServer):
    """Records the GETs SNS's SubscribeURL would receive; answers ``status``."""

    def __init__(self, status: int = 200, location: str = "") -> None:
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                owner.requests.append((self.command, self.path))
                body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture
def subscriber() -> Iterator[type[Subscriber]]:
    made: list[Subscriber] = []

    def make(status: int = 200, location: str = "") -> Subscriber:
        made.append(Subscriber(status, location))
        return made[-1]

    yield make  # type: ignore[misc]
    for sub in made:
        sub.close()


def confirmation(url: str) -> dict[str, str]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37f",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:cloudsync",
        "Message": "You have chosen to subscribe to the topic ...",
        "SubscribeURL": url,
        "Timestamp": "2024-05-01T12:00:00.000Z",
    }


def test_confirmation_visits_subscribe_url(subscriber) -> None:
    sub = subscriber()
    message = confirmation(f"{sub.url}/?Action=ConfirmSubscription&Token=2336412f37f")
    (same,) = DRIVER.split(message)
    assert same is message
    info = DRIVER.describe(message)
    assert info.key == "sns:165545c9-2a5c-472c-8df2-7ff2be2b3b1b"
    assert info.event_type == "SNS SubscriptionConfirmation"
    result = DRIVER.translate(message, LOCAL)
    assert result.changes == [] and result.ignored == "SNS subscription confirmed"
    assert sub.requests == [("GET", "/?Action=ConfirmSubscription&Token=2336412f37f")]


def test_local_url_refused_for_a_real_provider(subscriber) -> None:
    sub = subscriber()
    with pytest.raises(BadPayload, match="SubscribeURL"):
        DRIVER.translate(confirmation(f"{sub.url}/confirm"), REAL)
    assert sub.requests == []


@pytest.mark.parametrize(("status", "error"), [(500, NetworkError), (404, BadPayload)])
def test_confirmation_failures(subscriber, status: int, error: type) -> None:
    sub = subscriber(status)
    with pytest.raises(error, match=f"HTTP {status}"):
        DRIVER.translate(confirmation(f"{sub.url}/confirm"), LOCAL)


def test_redirects_are_not_followed(subscriber) -> None:
    target = subscriber()
    redirecting = subscriber(302, location=f"{target.url}/latest/meta-data/")
    with pytest.raises(BadPayload, match="HTTP 302"):
        DRIVER.translate(confirmation(f"{redirecting.url}/confirm"), LOCAL)
    assert len(redirecting.requests) == 1
    assert target.requests == []


def test_missing_subscribe_url() -> None:
    message = confirmation("x")
    del message["SubscribeURL"]
    with pytest.raises(BadPayload, match="SubscribeURL"):
        DRIVER.translate(message, LOCAL)


@pytest.mark.parametrize(
    ("url", "config", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", REAL, True),
        ("https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription", REAL, True),
        ("https://attacker-bucket.s3.amazonaws.com/confirm", REAL, False),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/x", REAL, False),
        ("http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", REAL, False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/", REAL, False),
        ("https://evil.example/?x=.amazonaws.com", REAL, False),
        ("http://127.0.0.1:8000/confirm", REAL, False),
        ("http://127.0.0.1:8000/confirm", LOCAL, True),
        ("http://localhost:8000/confirm", LOCAL, True),
        ("http://10.0.0.1/confirm", LOCAL, False),
        ("file:///etc/passwd", LOCAL, False),
    ],
)
def test_confirm_allowed(url: str, config: dict[str, str], allowed: bool) -> None:
    assert confirm_allowed(url, config) is allowed


def test_unsubscribe_confirmation_is_ignored() -> None:
    message = confirmation("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
    message["Type"] = "UnsubscribeConfirmation"
    assert DRIVER.translate(message, REAL).ignored == "SNS unsubscribe confirmation"


def test_notification_that_is_not_json() -> None:
    envelope = {"Type": "Notification", "MessageId": "m-1", "Message": "hello world"}
    (message,) = DRIVER.split(envelope)
    assert message is envelope and DRIVER.describe(message).key == "sns:m-1"
    with pytest.raises(BadPayload, match="Message"):
        DRIVER.translate(message, REAL)
