"""The ``noop`` driver: accepts any JSON event and changes nothing.

Useful to wire a producer up before its real driver exists: events land in
the inbox (deduplicated) and are marked processed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.drivers.base import Driver, Translation

__all__ = ["NoopDriver"]


class NoopDriver(Driver):
    name = "noop"
    description = "Records events in the inbox and changes nothing"

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        return Translation(changes=[])
