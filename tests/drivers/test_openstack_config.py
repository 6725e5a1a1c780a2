"""client_config validation of the OpenStack driver (no network)."""

from __future__ import annotations

import pytest

from sync.drivers.base import ConfigError
from sync.drivers.openstack import OpenStackDriver
from sync.drivers.openstack.config import validate_config

BASE = {
    "auth_url": "https://keystone.example.org:5000/v3/",
    "username": "sync",
    "password": " s3cret ",
    "project_name": "admin",
}


def errors_of(config) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    return err.value.errors


def test_minimal_password_config_gets_defaults() -> None:
    assert validate_config(BASE) == {
        "auth_url": "https://keystone.example.org:5000/v3",
        "version": "3",
        "username": "sync",
        "password": " s3cret ",  # secrets are never stripped
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "interface": "public",
        "verify": True,
    }


def test_driver_uses_these_rules() -> None:
    with pytest.raises(ConfigError):
        OpenStackDriver().validate_config({})


def test_full_config() -> None:
    config = {
        **BASE,
        "user_domain_name": "ldap",
        "project_domain_name": "corp",
        "region_name": "RegionTwo",
        "interface": "internal",
        "version": 3,
        "verify": True,
        "cacert": "/etc/ssl/cloud-ca.pem",
    }
    out = validate_config(config)
    assert out["region_name"] == "RegionTwo" and out["interface"] == "internal"
    assert out["user_domain_name"] == "ldap" and out["project_domain_name"] == "corp"
    assert out["version"] == "3" and out["cacert"] == "/etc/ssl/cloud-ca.pem"


def test_missing_auth_url() -> None:
    errors = errors_of({k: v for k, v in BASE.items() if k != "auth_url"})
    assert list(errors) == ["auth_url"]
    assert errors["auth_url"].startswith("required")


@pytest.mark.parametrize("url", ["keystone:5000", "ftp://keystone/v3", "https://", 5000])
def test_bad_auth_url(url) -> None:
    assert "auth_url" in errors_of({**BASE, "auth_url": url})


def test_v2_auth_url_is_refused() -> None:
    assert "v2.0" in errors_of({**BASE, "auth_url": "http://k:5000/v2.0"})["auth_url"]


def test_tenant_name_is_an_alias_of_project_name() -> None:
    config = {k: v for k, v in BASE.items() if k != "project_name"} | {"tenant_name": "ops"}
    out = validate_config(config)
    assert out["project_name"] == "ops" and "tenant_name" not in out


def test_tenant_name_conflicting_with_project_name() -> None:
    assert "conflicts" in errors_of({**BASE, "tenant_name": "other"})["tenant_name"]
    assert validate_config({**BASE, "tenant_name": "admin"})["project_name"] == "admin"


def test_password_auth_needs_user_password_project() -> None:
    errors = errors_of({"auth_url": BASE["auth_url"]})
    assert set(errors) == {"username", "password", "project_name"}
    assert "application_credential" in errors["username"]
    assert "tenant_name" in errors["project_name"]


def test_application_credentials() -> None:
    config = {
        "auth_url": "http://keystone/identity",
        "application_credential_id": "abc",
        "application_credential_secret": "xyz",
    }
    out = validate_config(config)
    assert out["application_credential_id"] == "abc"
    assert "username" not in out and "project_name" not in out


def test_application_credentials_incomplete_or_mixed() -> None:
    errors = errors_of({"auth_url": "http://k/v3", "application_credential_id": "abc"})
    assert errors == {"application_credential_secret": "required with application credentials"}
    mixed = {
        **BASE,
        "application_credential_id": "abc",
        "application_credential_secret": "xyz",
    }
    errors = errors_of(mixed)
    assert set(errors) == {"username", "password", "project_name"}
    assert "already scoped" in errors["username"]


def test_unknown_key_is_an_error() -> None:
    errors = errors_of({**BASE, "projet_name": "typo"})
    assert list(errors) == ["projet_name"]
    assert errors["projet_name"].startswith("unknown key")
    assert "project_name" in errors["projet_name"]  # lists what is allowed


def test_bad_values() -> None:
    errors = errors_of(
        {**BASE, "interface": "private", "verify": "yes", "version": "2.0", "username": 7}
    )
    assert set(errors) == {"interface", "verify", "version", "username"}
    assert "public, internal, admin" in errors["interface"]
    assert "v2.0 is not supported" in errors["version"]
    assert errors["verify"] == "must be true or false"


def test_interface_url_suffix_and_case_accepted() -> None:
    assert validate_config({**BASE, "interface": "publicURL"})["interface"] == "public"
    assert validate_config({**BASE, "interface": "Internal"})["interface"] == "internal"


def test_cacert_with_verify_false_is_contradictory() -> None:
    errors = errors_of({**BASE, "verify": False, "cacert": "/ca.pem"})
    assert list(errors) == ["cacert"]
    assert validate_config({**BASE, "verify": False})["verify"] is False


def test_not_an_object() -> None:
    assert errors_of(["auth_url"]) == {"client_config": "must be a JSON object"}


def test_all_errors_reported_at_once() -> None:
    errors = errors_of({"bogus": 1, "interface": "x"})
    assert {"bogus", "interface", "auth_url", "username", "password", "project_name"} <= set(errors)


@pytest.mark.parametrize(
    "config",
    [
        BASE,
        {**BASE, "tenant_name": "admin", "cacert": "/ca.pem", "region_name": "R"},
        {
            "auth_url": "http://k/v3",
            "application_credential_id": "a",
            "application_credential_secret": "b",
        },
    ],
)
def test_normalized_config_validates_to_itself(config) -> None:
    # The stored config is the normalized one; the driver validates it again.
    once = validate_config(config)
    assert validate_config(once) == once
