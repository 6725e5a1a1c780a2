"""A driver for the API tests: validates its config and supports full syncs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.drivers.base import ConfigError, Driver, Snapshot, Translation

__all__ = ["ApiFakeDriver"]


class ApiFakeDriver(Driver):
    name = "api-fake"
    description = "API tests"
    supports_full_sync = True
    supports_catch_up = True

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
