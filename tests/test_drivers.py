"""Small drivers used by tests to exercise the core's error handling.
Registered through the CLOUDSYNC_DRIVERS setting, like a custom driver."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sync.changes import Change, Kind, Op, make_version
from sync.drivers.base import (
    AuthError,
    BadPayload,
    ConfigError,
    Driver,
    NetworkError,
    Snapshot,
    Translation,
)


class HostDriver(Driver):
    """``{"id": ..., "host": ..., "hostname": ..., "v": n, "delete": bool}`` -> one host change."""

    name = "test.hosts"
    failures_left: dict[str, int] = {}
    lock = threading.Lock()

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        config = dict(super().validate_config(config))
        if "region" not in config:
            raise ConfigError({"region": "is required"})
        return config

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        if not isinstance(message, dict) or "host" not in message:
            raise BadPayload("field 'host' is missing")
        with self.lock:
            left = self.failures_left.get(message["host"], 0)
            if left:
                self.failures_left[message["host"]] = left - 1
                raise NetworkError("connection reset by cloud")
        if message.get("ignore"):
            return Translation(ignored="not interesting")
        op = Op.DELETE if message.get("delete") else Op.UPSERT
        fields = {} if op == Op.DELETE else {"hostname": message.get("hostname", "")}
        return Translation(
            changes=[Change(Kind.HOST, op, message["host"], fields, make_version(int(message.get("v", 1))),
                            source_ref=str(message.get("id", "")))]
        )


class ConfiguredDriver(Driver):
    """Requires ``auth_url`` and ``password``; full sync of nothing;
    ``test_connection`` fails as ``config["mode"]`` says (admin and API tests)."""

    name = "fake.configured"
    description = "tests: config validation, runs, test connection"
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

    def test_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        mode = config.get("mode")
        if mode == "auth":
            raise AuthError("401 from keystone: The request you have made requires authentication")
        if mode == "network":
            raise NetworkError("connect timeout to https://keystone.example:5000")
        return {"servers": 3, "flavors": 2}


class SlowListingDriver(Driver):
    """A full sync whose listing takes ``config["seconds"]`` and lists one host."""

    name = "test.slow_listing"
    supports_full_sync = True

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        return Translation(changes=[])

    def list_inventory(self, config: Mapping[str, Any]) -> Snapshot:
        import time

        time.sleep(float(config.get("seconds", 0)))
        change = Change(Kind.HOST, Op.UPSERT, "listed-vm", {"hostname": "listed"}, make_version(1))
        return Snapshot(changes=[change], kinds=frozenset({Kind.HOST}))
