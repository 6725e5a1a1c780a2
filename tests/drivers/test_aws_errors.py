"""AWS errors reach the worker as AuthError / NetworkError / DriverError.

Real botocore requests go to a small local HTTP server that answers the way
EC2 and STS answer errors (XML bodies, status codes), so parsing, botocore's
retries and our classification are all exercised; the classification table
itself is also checked on ClientError objects built by hand.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from sync.drivers.aws import AwsEc2Driver, ec2
from sync.drivers.aws.ec2 import classify_error
from sync.drivers.base import AuthError, BadPayload, DriverError, NetworkError
from tests.drivers.test_aws_fixtures import load
from tests.local_http import LocalHttpServer, QuietHandler

DRIVER = AwsEc2Driver()
STATE_EVENT = "aws-lambda-rust-runtime/example-eventbridge-event-obj.json"  # us-east-1, pending

EC2_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
)
STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
)


class FakeAws(LocalHttpServer):
    """Answers every request for ``Action`` with a configured error."""

    def __init__(self, errors: dict[str, tuple[int, str]], delay: float = 0.0) -> None:
        self.errors = errors
        self.delay = delay
        self.actions: list[str] = []
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                action = parse_qs(body).get("Action", [""])[0]
                fake.actions.append(action)
                if fake.delay:
                    time.sleep(fake.delay)
                status, code = fake.errors.get(action, (400, "UnknownOperation"))
                template = STS_ERROR if action in ("GetCallerIdentity", "AssumeRole") else EC2_ERROR
                payload = template.format(code=code, message=f"{code} from the fake").encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (read timeout test)
                    pass

        super().__init__(Handler)

    def config(self, **extra: str) -> dict[str, str]:
        return {
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "secret",
            "endpoint_url": self.url,
            **extra,
        }


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two attempts instead of three (our setting, not the SDK's internals)."""
    monkeypatch.setattr(ec2, "MAX_ATTEMPTS", 2)
    ec2.clear_client_cache()
    yield
    ec2.clear_client_cache()


@pytest.fixture
def fake_aws() -> Iterator[type[FakeAws]]:
    servers: list[FakeAws] = []

    def make(errors: dict[str, tuple[int, str]], delay: float = 0.0) -> FakeAws:
        servers.append(FakeAws(errors, delay))
        return servers[-1]

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


def test_throttling_is_retried_then_a_network_error(fake_aws) -> None:
    fake = fake_aws({"DescribeInstances": (503, "RequestLimitExceeded")})
    with pytest.raises(NetworkError, match="throttled by AWS during ec2:DescribeInstances"):
        DRIVER.translate(load(STATE_EVENT), fake.config())
    assert fake.actions == ["DescribeInstances", "DescribeInstances"]  # botocore retried once


@pytest.mark.parametrize(
    ("status", "code", "error", "text"),
    [
        (401, "AuthFailure", AuthError, "rejected the credentials during ec2:DescribeInstances"),
        (403, "UnauthorizedOperation", AuthError, "access denied: ec2:DescribeInstances"),
        (500, "InternalError", NetworkError, "HTTP 500"),
        (400, "InvalidParameterValue", DriverError, "ec2:DescribeInstances failed"),
    ],
)
def test_ec2_errors_from_the_wire(fake_aws, status: int, code: str, error: type, text: str) -> None:
    fake = fake_aws({"DescribeInstances": (status, code)})
    with pytest.raises(error, match=text) as caught:
        DRIVER.translate(load(STATE_EVENT), fake.config())
    if error is DriverError:
        assert not isinstance(caught.value, AuthError | NetworkError | BadPayload)


def test_sts_errors_from_the_wire(fake_aws) -> None:
    fake = fake_aws(
        {"GetCallerIdentity": (403, "InvalidClientTokenId"), "AssumeRole": (403, "AccessDenied")}
    )
    with pytest.raises(AuthError, match="InvalidClientTokenId"):
        DRIVER.test_connection(fake.config())
    with pytest.raises(AuthError, match="access denied: sts:AssumeRole"):
        DRIVER.list_inventory(fake.config(role_arn="arn:aws:iam::123456789012:role/reader"))
    with pytest.raises(AuthError, match="GetCallerIdentity"):
        list(DRIVER.list_inventory(fake.config()).changes)


def test_read_timeout_is_a_network_error(fake_aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2, "READ_TIMEOUT", 0.3)
    monkeypatch.setattr(ec2, "MAX_ATTEMPTS", 1)
    fake = fake_aws({}, delay=1.0)
    with pytest.raises(NetworkError, match="cannot reach AWS for sts:GetCallerIdentity"):
        DRIVER.test_connection(fake.config())


def test_nothing_listening_is_a_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2, "MAX_ATTEMPTS", 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    with pytest.raises(NetworkError):
        DRIVER.test_connection({**config, "endpoint_url": f"http://127.0.0.1:{port}"})


# -- the classification table ---------------------------------------------------------
def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "DescribeInstances")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AuthFailure", 401, AuthError),
        ("InvalidClientTokenId", 403, AuthError),
        ("ExpiredToken", 400, AuthError),
        ("ExpiredTokenException", 400, AuthError),
        ("UnrecognizedClientException", 400, AuthError),
        ("AccessDenied", 403, AuthError),
        ("AccessDeniedException", 400, AuthError),
        ("UnauthorizedOperation", 403, AuthError),
        ("RequestLimitExceeded", 503, NetworkError),
        ("Throttling", 400, NetworkError),
        ("ThrottlingException", 400, NetworkError),
        ("ServiceUnavailable", 503, NetworkError),
        ("SomethingNew", 502, NetworkError),
        ("SomethingNew", 403, AuthError),
        ("InvalidInstanceID.Malformed", 400, DriverError),
    ],
)
def test_client_error_classification(code: str, status: int, expected: type) -> None:
    error = classify_error(client_error(code, status), "ec2:DescribeInstances")
    assert type(error) is expected
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        assert str(error).startswith("access denied: ec2:DescribeInstances")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), NetworkError),
        (ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), NetworkError),
        (ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), NetworkError),
        (NoCredentialsError(), AuthError),
        (TimeoutError("slow"), NetworkError),
    ],
)
def test_transport_error_classification(exc: Exception, expected: type) -> None:
    assert type(classify_error(exc, "ec2:DescribeInstances")) is expected
