"""boto3 access for the ``aws.ec2`` driver: clients, error classification and
the few EC2/STS calls the driver makes.

Every SDK call goes through ``aws_call`` so that botocore's many exception
types reach the worker as the three errors it knows how to handle (see
``sync.drivers.base``). botocore itself retries briefly (standard mode, few
attempts, small timeouts); longer outages are the Celery layer's job, with
backoff, so a worker is never stuck inside one SDK call for minutes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from sync.drivers.aws.config import validate_config
from sync.drivers.base import AuthError, DriverError, NetworkError

__all__ = [
    "ACCESS_CODES",
    "AUTH_CODES",
    "Clients",
    "Lookup",
    "THROTTLE_CODES",
    "aws_call",
    "caller_identity",
    "classify_error",
    "clear_client_cache",
    "describe_images",
    "own_images",
    "describe_instance_types",
    "fetch_lookup",
    "get_clients",
    "iter_instance_pages",
]

CONNECT_TIMEOUT = 5  # seconds
READ_TIMEOUT = 20
MAX_ATTEMPTS = 3  # botocore "standard" mode: first try + 2 retries
CLIENT_TTL = 600.0  # seconds a cached client (and assumed-role credentials) is reused
ROLE_SESSION_NAME = "cloudsync"
FILTER_CHUNK = 200  # AWS accepts at most 200 values per filter

AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "RequestExpired",
        "OptInRequired",
    }
)
ACCESS_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
)
THROTTLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)
SERVER_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"})


# -- errors ------------------------------------------------------------------
def classify_error(exc: BaseException, action: str) -> DriverError:
    """Map a botocore exception to the driver error the worker acts on.

    ``action`` is the IAM action name (``ec2:DescribeInstances``) so that an
    access-denied message tells the operator exactly which permission to add.
    """
    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if code in ACCESS_CODES:
            return AuthError(f"access denied: {action} ({code}: {message})")
        if code in AUTH_CODES:
            return AuthError(f"AWS rejected the credentials during {action} ({code}: {message})")
        if code in THROTTLE_CODES:
            return NetworkError(f"throttled by AWS during {action} ({code})")
        if code in SERVER_CODES or status >= 500:
            return NetworkError(f"AWS error during {action} (HTTP {status} {code}: {message})")
        if status in (401, 403):
            return AuthError(f"AWS refused {action} (HTTP {status} {code}: {message})")
        return DriverError(f"{action} failed (HTTP {status} {code}: {message})")
    if isinstance(
        exc,
        NoCredentialsError
        | PartialCredentialsError
        | CredentialRetrievalError
        | TokenRetrievalError,
    ):
        return AuthError(f"no usable AWS credentials for {action}: {exc}")
    if isinstance(
        exc, BotoConnectionError | HTTPClientError | ResponseParserError | OSError | TimeoutError
    ):
        # connection refused/reset, DNS, connect/read timeouts, proxies, garbage from a proxy
        return NetworkError(f"cannot reach AWS for {action}: {exc}")
    if isinstance(exc, BotoCoreError):
        return DriverError(f"{action} failed: {exc}")
    return DriverError(f"{action} failed: {exc!r}")


@contextmanager
def aws_call(action: str) -> Iterator[None]:
    """Run SDK code, re-raising its errors as classified driver errors."""
    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError, OSError) as exc:
        raise classify_error(exc, action) from exc


# -- clients -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Clients:
    ec2: Any
    sts: Any
    region: str
    expires_at: float


_cache: dict[str, Clients] = {}
_cache_lock = threading.Lock()


def _boto_config() -> BotoConfig:
    return BotoConfig(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        user_agent_extra="cloudsync",
    )


def _cache_key(config: Mapping[str, Any]) -> str:
    raw = json.dumps(dict(config), sort_keys=True) + f"|{MAX_ATTEMPTS}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _build(config: dict[str, Any]) -> Clients:
    region = config["region_name"]
    common: dict[str, Any] = {"region_name": region, "config": _boto_config()}
    if config.get("endpoint_url"):
        common["endpoint_url"] = config["endpoint_url"]
    session = boto3.session.Session(
        aws_access_key_id=config.get("aws_access_key_id"),
        aws_secret_access_key=config.get("aws_secret_access_key"),
        aws_session_token=config.get("aws_session_token"),
    )
    expires_at = time.monotonic() + CLIENT_TTL
    if config.get("role_arn"):
        with aws_call("sts:AssumeRole"):
            creds = session.client("sts", **common).assume_role(
                RoleArn=config["role_arn"], RoleSessionName=ROLE_SESSION_NAME
            )["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        # Temporary credentials last an hour by default; CLIENT_TTL is well inside.
    with aws_call("client setup"):
        return Clients(
            ec2=session.client("ec2", **common),
            sts=session.client("sts", **common),
            region=region,
            expires_at=expires_at,
        )


def get_clients(config: Mapping[str, Any]) -> Clients:
    """Clients for a provider, cached for a few minutes per config.

    Drivers are stateless, but building a boto3 client costs tens of
    milliseconds (and an AssumeRole call): far more than translating an event.
    """
    normalized = validate_config(config)
    key = _cache_key(normalized)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.expires_at > now:
            return cached
    clients = _build(normalized)
    with _cache_lock:
        _cache[key] = clients
        for stale in [k for k, v in _cache.items() if v.expires_at <= now]:
            del _cache[stale]
    return clients


def clear_client_cache() -> None:
    """Forget cached clients (credential rotation, tests)."""
    with _cache_lock:
        _cache.clear()


# -- calls -------------------------------------------------------------------
def _chunks(values: Iterable[str], size: int = FILTER_CHUNK) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def caller_identity(clients: Clients) -> dict[str, str]:
    with aws_call("sts:GetCallerIdentity"):
        answer = clients.sts.get_caller_identity()
    return {"account": answer.get("Account", ""), "arn": answer.get("Arn", "")}


LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


def iter_instance_pages(
    clients: Clients, *, page_size: int = 1000, instance_ids: Iterable[str] | None = None
) -> Iterator[list[tuple[dict[str, Any], str]]]:
    """Pages of ``(instance, owner account id)``.

    Without ``instance_ids``: every instance that is not terminated. With
    them: those instances whatever their state, looked up with an
    ``instance-id`` *filter* rather than ``InstanceIds`` so that one unknown
    id (terminated long ago, not yet visible) does not fail the whole call.
    """
    paginator = clients.ec2.get_paginator("describe_instances")
    if instance_ids is None:
        queries = [[{"Name": "instance-state-name", "Values": LIVE_STATES}]]
    else:
        queries = [[{"Name": "instance-id", "Values": chunk}] for chunk in _chunks(instance_ids)]
    for filters in queries:
        with aws_call("ec2:DescribeInstances"):
            for page in paginator.paginate(
                Filters=filters, PaginationConfig={"PageSize": page_size}
            ):
                yield [
                    (instance, reservation.get("OwnerId", ""))
                    for reservation in page.get("Reservations") or []
                    for instance in reservation.get("Instances") or []
                ]


def describe_instance_types(clients: Clients, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Instance type descriptions by name; unknown names are simply absent."""
    found: dict[str, dict[str, Any]] = {}
    paginator = clients.ec2.get_paginator("describe_instance_types")
    for chunk in _chunks(sorted(set(names)), 100):
        with aws_call("ec2:DescribeInstanceTypes"):
            for page in paginator.paginate(Filters=[{"Name": "instance-type", "Values": chunk}]):
                for info in page.get("InstanceTypes") or []:
                    found[info["InstanceType"]] = info
    return found


def describe_images(clients: Clients, image_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """AMIs by id; deregistered or no longer shared AMIs are absent."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(image_ids))):
        with aws_call("ec2:DescribeImages"):
            answer = clients.ec2.describe_images(
                Filters=[{"Name": "image-id", "Values": chunk}], IncludeDeprecated=True
            )
        for image in answer.get("Images") or []:
            found[image["ImageId"]] = image
    return found


def own_images(clients: Clients) -> dict[str, dict[str, Any]]:
    """The account's own AMIs (``Owners=self``), deprecated ones included:
    the AMIs its ``EC2 AMI State Change`` events are about."""
    with aws_call("ec2:DescribeImages"):
        answer = clients.ec2.describe_images(Owners=["self"], IncludeDeprecated=True)
    return {image["ImageId"]: image for image in answer.get("Images") or []}


@dataclass(slots=True)
class Lookup:
    """Everything re-fetched for a set of instance ids, in as few calls as
    possible: one DescribeInstances (per 200 ids), one DescribeInstanceTypes,
    one DescribeImages."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched: frozenset[str] = frozenset()


def fetch_lookup(
    clients: Clients, instance_ids: Iterable[str], image_ids: Iterable[str] = ()
) -> Lookup:
    """The instances (with their types and AMIs) and the extra ``image_ids``
    (AMI events), one call of each kind."""
    ids = sorted(set(instance_ids))
    lookup = Lookup(fetched=frozenset(ids))
    extra_images = set(image_ids)
    if not ids:
        if extra_images:
            lookup.images = describe_images(clients, extra_images)
        return lookup
    for page in iter_instance_pages(clients, instance_ids=ids):
        for instance, owner in page:
            lookup.instances[instance["InstanceId"]] = instance
            lookup.owners[instance["InstanceId"]] = owner
    types = {i["InstanceType"] for i in lookup.instances.values() if i.get("InstanceType")}
    images = {i["ImageId"] for i in lookup.instances.values() if i.get("ImageId")} | extra_images
    if types:
        lookup.types = describe_instance_types(clients, types)
    if images:
        lookup.images = describe_images(clients, images)
    return lookup
