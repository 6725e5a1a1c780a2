"""SNS HTTP(S) subscriptions: envelope unwrapping and subscription confirmation.

SNS posts ``{"Type": "Notification", "Message": "<json string>", ...}`` (with
``Content-Type: text/plain``); the message a driver cares about is inside.
Before it delivers anything, SNS sends a ``SubscriptionConfirmation`` whose
``SubscribeURL`` must be visited once. We visit it from the worker (not from
the request path, which must stay fast and write nothing), and only if it
points at AWS — an attacker holding the endpoint secret must not be able to
make the worker fetch arbitrary URLs. Local URLs are allowed only for
providers whose ``endpoint_url`` is itself local (tests, private setups).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sync.drivers.aws.config import LOCAL_HOSTS, is_local_endpoint
from sync.drivers.base import BadPayload, NetworkError, Translation

__all__ = ["CONFIRM_TIMEOUT", "confirm_allowed", "confirm_subscription", "unwrap"]

CONFIRM_TIMEOUT = 5.0  # seconds
SNS_TYPES = frozenset({"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"})


def is_envelope(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("Type") in SNS_TYPES


def unwrap(message: Mapping[str, Any]) -> list[Any] | None:
    """The messages inside a ``Notification`` (``Message`` is a JSON string on
    the wire; AWS docs show it as an object, accepted too). None when it is
    not JSON: the envelope is then passed on so translate can reject it."""
    inner = message.get("Message")
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            return None
    if isinstance(inner, Mapping):
        return [inner]
    if isinstance(inner, list):
        return list(inner)
    return None


_SNS_HOST = re.compile(r"sns(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A confirmation URL that redirects is not SNS's: never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def confirm_allowed(url: str, config: Mapping[str, Any]) -> bool:
    """https on SNS's own hosts (``sns.<region>.amazonaws.com[.cn]``) always;
    http(s) on localhost only for a provider whose endpoint_url is local.
    Not any ``*.amazonaws.com``: S3 buckets and API gateways live there too."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme == "https" and _SNS_HOST.fullmatch(host):
        return True
    return parts.scheme in ("http", "https") and host in LOCAL_HOSTS and is_local_endpoint(config)


def confirm_subscription(message: Mapping[str, Any], config: Mapping[str, Any]) -> Translation:
    """Visit SubscribeURL with a GET. 5xx/network problems are retried by the
    worker (SNS keeps the token valid for three days); a 4xx is final."""
    url = message.get("SubscribeURL")
    if not isinstance(url, str) or not url.strip():
        raise BadPayload("SubscribeURL: missing")
    url = url.strip()
    if not confirm_allowed(url, config):
        raise BadPayload(f"SubscribeURL: not an AWS SNS URL: {urlsplit(url).hostname!r}")
    handlers: list[Any] = [_NoRedirects()]
    if urlsplit(url).hostname in LOCAL_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # never send local URLs to a proxy
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(
            urllib.request.Request(url, method="GET"), timeout=CONFIRM_TIMEOUT
        ) as resp:
            resp.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise NetworkError(f"SubscribeURL: HTTP {exc.code}") from exc
        raise BadPayload(f"SubscribeURL: HTTP {exc.code} (expired or already used token?)") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise NetworkError(f"SubscribeURL: {exc}") from exc
    return Translation(ignored="SNS subscription confirmed")
