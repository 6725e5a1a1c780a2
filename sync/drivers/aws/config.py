"""client_config rules of the ``aws.ec2`` driver.

One provider is one AWS region of one account: every listing and every
re-fetch is made in ``region_name``, and events from another region are
ignored. Credentials are either a static key pair (optionally with a session
token) or, when both keys are absent, boto3's default chain (instance role,
environment); ``role_arn`` is then assumed through STS on top of them, which
is how one set of credentials reaches many accounts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sync.drivers.base import ConfigError

__all__ = ["KEYS", "LOCAL_HOSTS", "is_local_endpoint", "validate_config"]

KEYS = frozenset(
    {
        "region_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "role_arn",
        "endpoint_url",
    }
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5 ...
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _text(config: Mapping[str, Any], key: str, errors: dict[str, str]) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors[key] = "must be a string"
        return None
    return value.strip() or None


def validate_config(config: Any) -> dict[str, Any]:
    """Return the normalized config (stripped strings, empty optionals dropped)
    or raise ``ConfigError`` naming every bad key at once, so an operator can
    fix a form in one round trip."""
    if not isinstance(config, Mapping):
        raise ConfigError("must be a JSON object")
    errors: dict[str, str] = {}
    for key in sorted(set(config) - KEYS):
        errors[str(key)] = "unknown key (allowed: " + ", ".join(sorted(KEYS)) + ")"

    out: dict[str, Any] = {}
    region = _text(config, "region_name", errors)
    if region is None:
        errors.setdefault("region_name", "required (one provider per region)")
    elif not _REGION.match(region):
        errors["region_name"] = f"not an AWS region name: {region!r}"
    else:
        out["region_name"] = region

    key_id = _text(config, "aws_access_key_id", errors)
    secret = _text(config, "aws_secret_access_key", errors)
    token = _text(config, "aws_session_token", errors)
    if key_id and not secret:
        errors.setdefault("aws_secret_access_key", "required with aws_access_key_id")
    if secret and not key_id:
        errors.setdefault("aws_access_key_id", "required with aws_secret_access_key")
    if token and not (key_id and secret):
        errors.setdefault("aws_session_token", "needs aws_access_key_id and aws_secret_access_key")
    for key, value in (
        ("aws_access_key_id", key_id),
        ("aws_secret_access_key", secret),
        ("aws_session_token", token),
    ):
        if value:
            out[key] = value

    role_arn = _text(config, "role_arn", errors)
    if role_arn:
        if _ROLE_ARN.match(role_arn):
            out["role_arn"] = role_arn
        else:
            errors["role_arn"] = "must look like arn:aws:iam::<12-digit account>:role/<name>"

    endpoint = _text(config, "endpoint_url", errors)
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors["endpoint_url"] = "must be an http(s) URL with a host"
        else:
            out["endpoint_url"] = endpoint.rstrip("/")

    if errors:
        raise ConfigError(errors)
    return out


def is_local_endpoint(config: Mapping[str, Any]) -> bool:
    """True when the provider talks to a local endpoint (moto, a test or
    private setup). Only then may an SNS SubscribeURL point at localhost."""
    endpoint = config.get("endpoint_url")
    if not isinstance(endpoint, str) or not endpoint:
        return False
    return urlsplit(endpoint).hostname in LOCAL_HOSTS
