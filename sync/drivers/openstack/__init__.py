"""The OpenStack driver (``openstack.ocata``, alias ``openstack``).

Event side in ``notifications`` (oslo/Nova/Glance/Neutron/Ceilometer message
shapes -> Changes); full sync and catch-up in ``inventory`` (openstacksdk);
client_config rules in ``config``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sync.drivers.base import Driver, EventInfo, Snapshot, Translation

__all__ = ["OpenStackDriver"]


class OpenStackDriver(Driver):
    name = "openstack.ocata"
    aliases = ("openstack",)
    description = "OpenStack notifications (Nova, Glance, Neutron) + openstacksdk full sync"
    supports_full_sync = True
    supports_catch_up = True

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        from sync.drivers.openstack.config import validate_config

        return validate_config(config)

    def split(self, message: Any) -> Iterator[Any]:
        from sync.drivers.openstack.notifications import split

        return split(message)

    def describe(self, message: Any) -> EventInfo:
        from sync.drivers.openstack.notifications import describe

        return describe(message)

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        from sync.drivers.openstack.notifications import translate

        return translate(message)

    def list_parts(self, config: Mapping[str, Any]) -> list[str]:
        from sync.drivers.openstack.inventory import PARTS

        return list(PARTS)

    def list_inventory(self, config: Mapping[str, Any], part: str | None = None) -> Snapshot:
        from sync.drivers.openstack.inventory import list_inventory

        return list_inventory(config, part)

    def list_changes_since(self, config: Mapping[str, Any], since: datetime) -> Snapshot:
        from sync.drivers.openstack.inventory import list_changes_since

        return list_changes_since(config, since)

    def test_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        from sync.drivers.openstack.inventory import test_connection

        return test_connection(config)
