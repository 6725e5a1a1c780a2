"""``client_config`` rules of the OpenStack driver.

An operator types this JSON in the admin (or carries it over from Ralph), so
every mistake is reported per key with a message that says how to fix it, and
nothing unknown is accepted silently (a typo such as ``projet_name`` would
otherwise fall back to a default and fail much later, in a worker).

Accepted keys::

    auth_url              required, http(s) URL of Keystone (versioned or not)
    username, password    password auth ...
    project_name          ... scoped to this project (Ralph's ``tenant_name`` too)
    user_domain_name      default "Default"
    project_domain_name   default "Default"
    application_credential_id, application_credential_secret
                          instead of username/password/project (already scoped)
    region_name           optional
    interface             public (default) | internal | admin
    version               identity API version, only "3"
    verify                optional bool, default true
    cacert                optional CA bundle path (with verify true)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sync.drivers.base import ConfigError

__all__ = ["ALLOWED_KEYS", "validate_config"]

ALLOWED_KEYS = frozenset(
    {
        "auth_url",
        "username",
        "password",
        "project_name",
        "tenant_name",
        "user_domain_name",
        "project_domain_name",
        "region_name",
        "version",
        "verify",
        "cacert",
        "interface",
        "application_credential_id",
        "application_credential_secret",
    }
)
INTERFACES = ("public", "internal", "admin")
_PASSWORD_KEYS = ("username", "password", "project_name")


def _text(config: Mapping[str, Any], key: str, errors: dict[str, str]) -> str | None:
    """A stripped non-empty string, None when absent/empty; type errors recorded."""
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors[key] = "must be a string"
        return None
    value = value.strip() if key not in ("password", "application_credential_secret") else value
    return value or None


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the normalized config (canonical keys, defaults filled in) or
    raise ``ConfigError`` mapping each bad key to a message."""
    if not isinstance(config, Mapping):
        raise ConfigError("must be a JSON object")
    errors: dict[str, str] = {}
    for key in sorted(set(config) - ALLOWED_KEYS):
        errors[key] = f"unknown key; allowed keys are: {', '.join(sorted(ALLOWED_KEYS))}"

    out: dict[str, Any] = {}
    auth_url = _text(config, "auth_url", errors)
    if auth_url is None:
        errors.setdefault("auth_url", "required: the Keystone URL, e.g. https://keystone:5000/v3")
    else:
        parts = urlsplit(auth_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors["auth_url"] = f"must be an http(s) URL, got {auth_url!r}"
        elif parts.path.rstrip("/").endswith(("/v2.0", "/v2")):
            errors["auth_url"] = (
                "points at the Keystone v2.0 API, which is gone; "
                "use the unversioned URL or the /v3 one"
            )
        out["auth_url"] = auth_url.rstrip("/")

    version = config.get("version", "3")
    normalized = str(version).strip().lower().removeprefix("v")
    if normalized in ("3", "3.0"):
        out["version"] = "3"
    elif normalized in ("2", "2.0"):
        errors["version"] = "identity API v2.0 is not supported (Keystone removed it); use 3"
    else:
        errors["version"] = f"unsupported identity API version {version!r}; use 3"

    project = _text(config, "project_name", errors)
    tenant = _text(config, "tenant_name", errors)
    if project and tenant and project != tenant:
        errors["tenant_name"] = (
            "conflicts with project_name (tenant_name is the old name of project_name)"
        )
    project = project or tenant
    values = {k: _text(config, k, errors) for k in ("username", "password")}
    values["project_name"] = project
    cred_id = _text(config, "application_credential_id", errors)
    cred_secret = _text(config, "application_credential_secret", errors)

    if cred_id or cred_secret:
        for key in ("application_credential_id", "application_credential_secret"):
            if not (cred_id if key.endswith("_id") else cred_secret):
                errors.setdefault(key, "required with application credentials")
        for key in _PASSWORD_KEYS:
            if values[key]:
                name = "tenant_name" if key == "project_name" and not config.get(key) else key
                errors.setdefault(
                    name,
                    "not used with application credentials (they are already scoped "
                    "to a project); remove it or remove the application credential",
                )
        out["application_credential_id"] = cred_id
        out["application_credential_secret"] = cred_secret
    else:
        hints = {
            "username": "required (or use application_credential_id/_secret)",
            "password": "required (or use application_credential_id/_secret)",
            "project_name": "required: the project to scope the token to "
            "(tenant_name is accepted as an alias)",
        }
        for key in _PASSWORD_KEYS:
            if not values[key]:
                errors.setdefault(key, hints[key])
            out[key] = values[key]
        for key in ("user_domain_name", "project_domain_name"):
            out[key] = _text(config, key, errors) or "Default"

    region = _text(config, "region_name", errors)
    if region:
        out["region_name"] = region

    interface = config.get("interface", "public")
    text = str(interface).strip().lower().removesuffix("url") if interface is not None else ""
    if text not in INTERFACES:
        errors["interface"] = f"must be one of {', '.join(INTERFACES)}, got {interface!r}"
    out["interface"] = text

    verify = config.get("verify", True)
    if not isinstance(verify, bool):
        errors["verify"] = "must be true or false"
    out["verify"] = verify
    cacert = _text(config, "cacert", errors)
    if cacert:
        if verify is False:
            errors["cacert"] = "has no effect with verify=false; remove one of them"
        out["cacert"] = cacert

    if errors:
        raise ConfigError(errors)
    return out
