"""Small drivers used by tests to exercise the core's error handling.
Registered through the CLOUDSYNC_DRIVERS setting, like a custom driver."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sync.changes import Change, Kind, Op, make_version
from sync.drivers.base import BadPayload, ConfigError, Driver, NetworkError, Translation


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
