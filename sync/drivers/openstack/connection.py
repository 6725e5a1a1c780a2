"""openstacksdk plumbing: building a Connection and classifying its errors.

The SDK does auth, catalog, version discovery and microversion headers; we
read bulk listings as raw JSON pages through its authenticated proxies
(DESIGN §8). Every failure leaves this module as one of the driver errors so
the Celery layer knows what to do: ``AuthError`` (credentials refused),
``NetworkError`` (connection, timeout, 5xx, 429: retried with backoff) or
``DriverError`` (anything else: wrong URL, missing catalog entry, 4xx), and
the message always says which step failed.

Retries here are deliberately few and short: the task retries whole runs with
backoff, and a sync that hangs for minutes inside keystoneauth helps nobody.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import openstack.connection
import openstack.exceptions
import requests
from keystoneauth1 import exceptions as ks_exc

from sync.drivers.base import (
    AuthError,
    DriverError,
    NetworkError,
    root_cause_text,
    unreachable_message,
)

__all__ = [
    "API_TIMEOUT",
    "CONNECT_RETRIES",
    "RETRY_DELAY",
    "STATUS_CODE_RETRIES",
    "api_message",
    "build_connection",
    "check_response",
    "translate_errors",
]

API_TIMEOUT = 60.0  # seconds per request (a 1,000-server page is ~1 MB)
CONNECT_RETRIES = 1  # keystoneauth retries of refused/reset connections and timeouts
STATUS_CODE_RETRIES = 1  # retries of 503 answers
RETRY_DELAY = 1.0  # seconds between those retries

APP_NAME = "cloudsync"


def build_connection(config: Mapping[str, Any]) -> openstack.connection.Connection:
    """An SDK connection from a *validated* config: no clouds.yaml, no OS_*
    environment, so what the provider says is all that is used."""
    if config.get("application_credential_id"):
        auth_type = "v3applicationcredential"
        auth = {
            "auth_url": config["auth_url"],
            "application_credential_id": config["application_credential_id"],
            "application_credential_secret": config["application_credential_secret"],
        }
    else:
        # Not the generic "password" plugin: it GETs auth_url for version
        # discovery, and when that answers 401 (auth_url pointing at another
        # service) keystoneauth 5.x retries "authenticated" inside its own
        # auth lock and hangs forever. v3 plugins POST straight to
        # <auth_url>/v3/auth/tokens (openstacksdk adds the /v3).
        auth_type = "v3password"
        auth = {
            key: config[key]
            for key in (
                "auth_url",
                "username",
                "password",
                "project_name",
                "user_domain_name",
                "project_domain_name",
            )
        }
    kwargs: dict[str, Any] = {
        "auth_type": auth_type,
        "auth": auth,
        "interface": config.get("interface", "public"),
        "identity_api_version": config.get("version", "3"),
        "verify": config.get("verify", True),
        "api_timeout": API_TIMEOUT,
        "connect_retries": CONNECT_RETRIES,
        "connect_retry_delay": RETRY_DELAY,
        "status_code_retries": STATUS_CODE_RETRIES,
        "status_code_retry_delay": RETRY_DELAY,
    }
    if config.get("region_name"):
        kwargs["region_name"] = config["region_name"]
    if config.get("cacert"):
        kwargs["cacert"] = config["cacert"]
    try:
        return openstack.connection.Connection(app_name=APP_NAME, **kwargs)
    except (openstack.exceptions.SDKException, ks_exc.ClientException) as exc:
        raise DriverError(f"cannot configure the OpenStack connection: {exc}") from exc


def api_message(response: requests.Response) -> str:
    """The human part of an OpenStack error body, whatever the service."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        text = (response.text or "").strip()
        return text[:300] or (response.reason or "")
    if isinstance(body, Mapping):
        if isinstance(body.get("message"), str):
            return body["message"]
        for (
            value
        ) in body.values():  # {"badRequest": {...}}, {"error": {...}}, {"NeutronError": ...}
            if isinstance(value, Mapping) and value.get("message"):
                return str(value["message"])
            if isinstance(value, str) and value:
                return value
    return str(body)[:300]


def check_response(response: requests.Response, what: str) -> requests.Response:
    """Raise the driver error matching a failed HTTP answer of step ``what``."""
    status = response.status_code
    if status < 400:
        return response
    where = f"HTTP {status} from {response.request.method} {response.url}"
    detail = f"{api_message(response)} ({where})"
    if status == 401:
        raise AuthError(f"authentication failed while {what}: {detail}")
    if status >= 500 or status in (408, 429):
        raise NetworkError(f"{what} failed: {detail}")
    raise DriverError(f"{what} failed: {detail}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _classify(exc: BaseException, what: str) -> DriverError:
    """Map an SDK/keystoneauth/requests exception (and its causes) to ours."""
    for err in _chain(exc):
        status = getattr(err, "http_status", None) or getattr(err, "status_code", None)
        if status == 401 or isinstance(err, ks_exc.Unauthorized):
            return AuthError(f"authentication failed while {what}: {err}")
    for err in _chain(exc):
        if isinstance(err, ks_exc.SSLError | requests.exceptions.SSLError):
            return DriverError(
                f"{what} failed: TLS error (check cacert/verify): {root_cause_text(err)}"
            )
    for err in _chain(exc):
        if isinstance(err, ks_exc.ConnectionError | requests.ConnectionError | requests.Timeout):
            return NetworkError(f"{what} failed: {unreachable_message(err)}")
        status = getattr(err, "http_status", None) or getattr(err, "status_code", None)
        if isinstance(status, int) and (status >= 500 or status in (408, 429)):
            return NetworkError(f"{what} failed: {err}")
    statuses = {
        getattr(e, "http_status", None) or getattr(e, "status_code", None) for e in _chain(exc)
    }
    if what.startswith("authenticating") and 404 in statuses:
        return DriverError(f"{what} failed: no Keystone v3 API there (check auth_url): {exc}")
    if isinstance(exc, ks_exc.EndpointNotFound | openstack.exceptions.ServiceDisabledException):
        return DriverError(f"{what} failed: missing service catalog entry: {exc}")
    if isinstance(exc, ks_exc.DiscoveryFailure):
        return DriverError(f"{what} failed: API version discovery failed (check auth_url): {exc}")
    return DriverError(f"{what} failed: {exc}")


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise anything but our own errors as the matching driver error.

    ``what`` names the step ("listing servers") and lands in the message.
    """
    try:
        yield
    except DriverError:
        raise
    except (
        ks_exc.ClientException,
        openstack.exceptions.SDKException,
        requests.RequestException,
        ValueError,  # a body that is not JSON
        KeyError,
        TypeError,
    ) as exc:
        raise _classify(exc, what) from exc
