"""A driver for the admin tests: config validation, full sync, test_connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.drivers.base import (
    AuthError,
    ConfigError,
    Driver,
    NetworkError,
    Snapshot,
    Translation,
)

__all__ = ["FakeDriver"]


class FakeDriver(Driver):
    name = "admin-fake"
    description = "admin tests"
    supports_full_sync = True
    supports_catch_up = False

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        config = super().validate_config(config)
        errors = {
            key: "this key is required" for key in ("auth_url", "password") if key not in config
        }
        if errors:
            raise ConfigError(errors)
        return config

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        return Translation(changes=[])

    def list_inventory(self, config: Mapping[str, Any]) -> Snapshot:
        return Snapshot(changes=[], kinds=frozenset())

    def test_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        mode = config.get("mode")
        if mode == "auth":
            raise AuthError("401 from keystone: The request you have made requires authentication")
        if mode == "network":
            raise NetworkError("connect timeout to https://keystone.example:5000")
        return {"servers": 3, "flavors": 2}
