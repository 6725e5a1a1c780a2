"""Neutron ``port.*`` / ``floatingip.*`` notifications -> host_ip Changes.

host_ip external ids:
* a port is one host_ip object with ``external_id`` = the Neutron port id
  (the same id Nova's versioned ``ip_addresses[].port_uuid`` names, so the
  two sources update one object);
* a floating IP is ``"fip:" + floating ip id`` (its own namespace: a floating
  IP is a separate Neutron resource and must not collide with a port id).

Payloads are wrapped (``{"port": {...}}``, bulk create ``{"ports": [...]}``,
``{"floatingip": {...}}``); deletes carry ``{"port_id": ...}`` /
``{"floatingip_id": ...}`` (newer Neutron adds the full resource too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.changes import Change, Kind, Op
from sync.drivers.base import Translation
from sync.drivers.openstack.common import (
    Msg,
    ignored,
    ip_version,
    opt_list,
    opt_str,
    ovo,
    req_str,
)

__all__ = ["FIP_PREFIX", "translate_network"]

FIP_PREFIX = "fip:"


def translate_network(msg: Msg) -> Translation:
    et = msg.event_type
    resource, _, action = et.partition(".")
    if action.endswith(".start"):
        return ignored(f"{et}: '.start' notification, nothing has changed yet")
    payload = msg.payload
    if action not in ("create.end", "update.end", "delete.end"):
        return ignored(f"{et}: not a {resource} change")
    if not isinstance(payload, Mapping):
        raise msg.bad(f"payload is not a JSON object (got {type(payload).__name__})")
    if action == "delete.end":
        return Translation(changes=[_delete(msg, resource, payload)])
    if resource == "port":
        ports = payload.get("ports")
        if ports is not None:  # bulk create
            if not isinstance(ports, list):
                raise msg.bad("payload.ports must be a JSON array")
            return Translation(
                changes=[
                    _port(msg, ovo(p, f"payload.ports[{i}]", msg), f"payload.ports[{i}]")
                    for i, p in enumerate(ports)
                ]
            )
        return Translation(
            changes=[_port(msg, ovo(payload.get("port"), "payload.port", msg), "payload.port")]
        )
    fip = ovo(payload.get("floatingip"), "payload.floatingip", msg)
    return Translation(changes=[_floating_ip(msg, fip)])


def _port(msg: Msg, port: Mapping[str, Any], where: str) -> Change:
    port_id = req_str(port, "id", where, msg)
    owner = opt_str(port, "device_owner", where, msg) or ""
    host = opt_str(port, "device_id", where, msg) if owner.startswith("compute:") else None
    mac = opt_str(port, "mac_address", where, msg)
    addresses: list[dict[str, Any]] = []
    for i, ip in enumerate(opt_list(port, "fixed_ips", where, msg) or []):
        iwhere = f"{where}.fixed_ips[{i}]"
        if not isinstance(ip, Mapping):
            raise msg.bad(f"{iwhere} is not a JSON object")
        address = req_str(ip, "ip_address", iwhere, msg)
        entry: dict[str, Any] = {
            "address": address,
            "kind": "fixed",
            "version": ip_version(address, f"{iwhere}.ip_address", msg),
        }
        if mac:
            entry["mac"] = mac
        addresses.append(entry)
    return msg.change(
        Kind.HOST_IP,
        Op.UPSERT,
        port_id,
        {"host": host, "port_id": port_id, "addresses": addresses},
        version=msg.version(port.get("updated_at")),
    )


def _floating_ip(msg: Msg, fip: Mapping[str, Any]) -> Change:
    where = "payload.floatingip"
    fip_id = req_str(fip, "id", where, msg)
    port_id = opt_str(fip, "port_id", where, msg)
    addresses: list[dict[str, Any]] = []
    if port_id:
        address = req_str(fip, "floating_ip_address", where, msg)
        addresses.append(
            {
                "address": address,
                "kind": "floating",
                "version": ip_version(address, f"{where}.floating_ip_address", msg),
            }
        )
    return msg.change(
        Kind.HOST_IP,
        Op.UPSERT,
        FIP_PREFIX + fip_id,
        {"host": None, "port_id": port_id, "addresses": addresses},
        version=msg.version(fip.get("updated_at")),
    )


def _delete(msg: Msg, resource: str, payload: Mapping[str, Any]) -> Change:
    key = f"{resource}_id"
    if payload.get(key) is None and isinstance(payload.get(resource), Mapping):
        obj_id = req_str(payload[resource], "id", f"payload.{resource}", msg)
    else:
        obj_id = req_str(payload, key, "payload", msg)
    prefix = FIP_PREFIX if resource == "floatingip" else ""
    return msg.change(Kind.HOST_IP, Op.DELETE, prefix + obj_id, version=msg.delete_version())
