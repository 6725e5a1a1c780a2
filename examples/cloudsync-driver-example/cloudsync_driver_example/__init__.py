"""``example``: a cloudsync driver for the made-up "vmbot" event format.

A vmbot message describes one VM::

    {"msg_id": "4f1c...", "seq": 42, "event": "vm.created|vm.updated|vm.deleted",
     "vm": {"uuid": "0b7e...", "name": "web-1", "state": "running", "ip": "10.0.0.5"}}

``seq`` is vmbot's global sequence number, so it is the version: a late
message with a lower ``seq`` never overwrites what a newer one set.

The driver is registered by the ``cloudsync.drivers`` entry point in
``pyproject.toml``; it only translates. It never touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.changes import Change, Kind, Op, make_version
from sync.drivers.base import BadPayload, ConfigError, Driver, EventInfo, Translation, body_hash

__all__ = ["ExampleDriver"]

__version__ = "0.1.0"

# vmbot states -> cloudsync's normalized host statuses (sync.choices.HostStatusChoices)
STATUS = {
    "provisioning": "building",
    "running": "active",
    "stopped": "stopped",
    "paused": "paused",
    "failed": "error",
}
EVENTS = {"vm.created": Op.UPSERT, "vm.updated": Op.UPSERT, "vm.deleted": Op.DELETE}


class ExampleDriver(Driver):
    name = "example"
    description = "Example: vmbot VM events -> hosts (docs/drivers.md)"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Runs when an operator saves the provider: errors are shown on the
        form per key, so a typo is caught before the first event fails."""
        config = super().validate_config(config)  # must be a JSON object
        domain = config.get("domain")
        if not isinstance(domain, str) or not domain.strip(" ."):
            raise ConfigError(
                {"domain": "is required: the DNS domain of the VMs, e.g. dc1.example.com"}
            )
        domain = domain.strip(" .").lower()
        if any(c.isspace() for c in domain):
            raise ConfigError({"domain": "must not contain spaces"})
        return {**config, "domain": domain}

    def describe(self, message: Any) -> EventInfo:
        """vmbot's ``msg_id`` is the dedup key (a redelivery is the same event)."""
        if isinstance(message, Mapping) and isinstance(message.get("msg_id"), str):
            return EventInfo(key=message["msg_id"], event_type=str(message.get("event", "")))
        return EventInfo(key=body_hash(message))

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        """One vmbot message -> one host Change. Garbage raises BadPayload
        (the event fails with this message and is not retried)."""
        if not isinstance(message, Mapping):
            raise BadPayload("a vmbot message is a JSON object")
        event = message.get("event")
        if event == "vmbot.heartbeat":
            return Translation(ignored="heartbeat")
        if event not in EVENTS:
            raise BadPayload(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
        vm = message.get("vm")
        if not isinstance(vm, Mapping) or not isinstance(vm.get("uuid"), str) or not vm["uuid"]:
            raise BadPayload("vm.uuid is missing")
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadPayload("seq must be a non-negative integer")
        op = EVENTS[event]
        fields: dict[str, Any] = {}
        if op == Op.UPSERT:
            if vm.get("name"):
                fields["hostname"] = f"{vm['name']}.{config['domain']}"
            if "state" in vm:
                fields["status"] = STATUS.get(str(vm["state"]), "unknown")
            if vm.get("ip"):
                fields["addresses"] = [{"address": str(vm["ip"]), "kind": "fixed"}]
        return Translation(
            changes=[
                Change(
                    kind=Kind.HOST,
                    op=op,
                    external_id=vm["uuid"],
                    fields=fields,
                    version=make_version(seq),
                    source_ref=str(message.get("msg_id", "")),
                )
            ]
        )
