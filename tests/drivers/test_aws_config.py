"""client_config validation of the ``aws.ec2`` driver (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.drivers.aws import AwsEc2Driver
from sync.drivers.base import ConfigError

DRIVER = AwsEc2Driver()


def test_driver_identity() -> None:
    assert DRIVER.name == "aws.ec2" and "aws" in DRIVER.aliases
    assert DRIVER.supports_full_sync and not DRIVER.supports_catch_up


def test_full_config_is_normalized() -> None:
    config = {
        "region_name": " eu-central-1 ",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "aws_session_token": "",
        "role_arn": "arn:aws:iam::123456789012:role/cloudsync-reader",
        "endpoint_url": "https://vpce-0123.ec2.eu-central-1.vpce.amazonaws.com/",
    }
    assert DRIVER.validate_config(config) == {
        "region_name": "eu-central-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "role_arn": "arn:aws:iam::123456789012:role/cloudsync-reader",
        "endpoint_url": "https://vpce-0123.ec2.eu-central-1.vpce.amazonaws.com",
    }


def test_region_alone_uses_the_default_credential_chain() -> None:
    assert DRIVER.validate_config({"region_name": "us-gov-west-1"}) == {
        "region_name": "us-gov-west-1"
    }


@pytest.mark.parametrize(
    ("config", "errors"),
    [
        ({}, {"region_name"}),
        ({"region_name": "moon-1"}, {"region_name"}),
        ({"region_name": 5}, {"region_name"}),
        ({"region_name": "us-east-1", "aws_access_key_id": "AKID"}, {"aws_secret_access_key"}),
        ({"region_name": "us-east-1", "aws_secret_access_key": "s"}, {"aws_access_key_id"}),
        ({"region_name": "us-east-1", "aws_session_token": "t"}, {"aws_session_token"}),
        ({"region_name": "us-east-1", "role_arn": "arn:aws:iam::1:user/x"}, {"role_arn"}),
        ({"region_name": "us-east-1", "endpoint_url": "ftp://example.com"}, {"endpoint_url"}),
        ({"region_name": "us-east-1", "endpoint_url": "not a url"}, {"endpoint_url"}),
        ({"region_name": "us-east-1", "regions": ["eu-west-1"]}, {"regions"}),
        ({"region": "us-east-1", "secret_key": "x"}, {"region", "secret_key", "region_name"}),
    ],
)
def test_invalid_configs_name_every_bad_key(config: dict[str, Any], errors: set[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        DRIVER.validate_config(config)
    assert set(caught.value.errors) == errors


def test_not_an_object() -> None:
    with pytest.raises(ConfigError) as caught:
        DRIVER.validate_config(["us-east-1"])  # type: ignore[arg-type]
    assert caught.value.errors == {"client_config": "must be a JSON object"}
