"""Read access to Nova instance payloads, versioned and legacy alike.

``Instance`` hides the two shapes (versioned ``InstancePayload`` under
``nova_object.data`` vs the legacy flat dict of ``info_from_instance``) behind
checked accessors, so ``nova`` decides *what* an event changes and this
module only knows *where* each field lives. Absent keys read as "unknown"
(the field is left out of the change), never as "empty".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.choices import HostStatusChoices
from sync.drivers.openstack.common import (
    Msg,
    ip_version,
    opt_dict,
    opt_int,
    opt_list,
    opt_str,
    ovo,
    req_str,
)
from sync.drivers.openstack.status import host_status

__all__ = ["Instance", "flavor_fields"]


class Instance:
    """Read access to a versioned (InstancePayload) or legacy instance payload."""

    def __init__(self, msg: Msg):
        payload = msg.payload
        if not isinstance(payload, Mapping):
            raise msg.bad(f"payload is not a JSON object (got {type(payload).__name__})")
        self.msg = msg
        self.versioned = "nova_object.data" in payload or "nova_object.name" in payload
        self.where = "payload.nova_object.data" if self.versioned else "payload"
        self.data = ovo(payload, "payload", msg) if self.versioned else dict(payload)
        self.uuid = req_str(self.data, "uuid" if self.versioned else "instance_id", self.where, msg)

    def s(self, key: str) -> str | None:
        return opt_str(self.data, key, self.where, self.msg)

    def hostname(self) -> str | None:
        return self.s("display_name") or self.s("host_name") or self.s("hostname")

    def status(self) -> str | None:
        """Nova's vm_state: versioned ``instance.update`` names the state it
        moved to in ``state_update.state`` (the sample at scheduling time has
        ``state_update.state`` "building" next to a stale ``state``); else
        ``state``; legacy falls back to ``state_description``."""
        raw = None
        if self.versioned and self.data.get("state_update") is not None:
            where = f"{self.where}.state_update"
            update = ovo(self.data["state_update"], where, self.msg)
            raw = opt_str(update, "state", where, self.msg)
        raw = raw or self.s("state") or (None if self.versioned else self.s("state_description"))
        status = host_status(raw)
        return None if status == HostStatusChoices.UNKNOWN else str(status)

    def image(self) -> tuple[bool, str | None]:
        """(known, image id); known with None = volume-backed (no image)."""
        if self.versioned:
            return "image_uuid" in self.data, self.s("image_uuid")
        # image_ref_url is built from instance.image_ref (what the API shows);
        # image_meta.base_image_ref is the *base* of a snapshot, not the image.
        url = self.s("image_ref_url")
        if url:
            tail = url.rstrip("/").rsplit("/", 1)[-1]
            return True, None if tail in ("", "images") else tail
        return "image_ref" in self.data, self.s("image_ref")

    def flavor(self) -> tuple[str, dict[str, Any]] | None:
        """(flavorid, flavor fields) of the embedded flavor, if identifiable."""
        if self.versioned:
            raw = self.data.get("flavor")
            if raw is None:
                return None
            where = f"{self.where}.flavor"
            data = ovo(raw, where, self.msg)
            fid = req_str(data, "flavorid", where, self.msg)
            return fid, flavor_fields(data, where, self.msg)
        fid = self.s("instance_flavor_id")
        if fid is None:
            return None
        fields = {
            "name": self.s("instance_type"),
            "cores": opt_int(self.data, "vcpus", self.where, self.msg),
            "memory": opt_int(self.data, "memory_mb", self.where, self.msg),
            "disk": opt_int(self.data, "root_gb", self.where, self.msg),
        }
        if fields["disk"] is None:
            fields["disk"] = opt_int(self.data, "disk_gb", self.where, self.msg)
        return fid, {k: v for k, v in fields.items() if v is not None}

    def metadata(self) -> dict[str, str] | None:
        raw = self.data.get("metadata")
        if raw is None:
            return None
        if isinstance(raw, list):  # old legacy form: [{"key": k, "value": v}]
            try:
                return {str(i["key"]): str(i["value"]) for i in raw}
            except (KeyError, TypeError):
                raise self.msg.bad(f"{self.where}.metadata list items need key/value") from None
        meta = opt_dict(self.data, "metadata", self.where, self.msg) or {}
        return {str(k): "" if v is None else str(v) for k, v in meta.items()}

    def tags(self) -> list[str] | None:
        tags = opt_list(self.data, "tags", self.where, self.msg)
        return None if tags is None else [str(t) for t in tags]

    def ips(self) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]] | None:
        """({port id: addresses}, addresses without a port) or None if the
        payload does not list IPs."""
        key = "ip_addresses" if self.versioned else "fixed_ips"
        items = opt_list(self.data, key, self.where, self.msg)
        if items is None:
            return None
        ports: dict[str, list[dict[str, Any]]] = {}
        portless: list[dict[str, Any]] = []
        for i, raw in enumerate(items):
            where = f"{self.where}.{key}[{i}]"
            ip = ovo(raw, where, self.msg)
            address = req_str(ip, "address", where, self.msg)
            entry: dict[str, Any] = {
                "address": address,
                "kind": "fixed",
                "version": ip_version(address, f"{where}.address", self.msg),
            }
            mac = opt_str(ip, "mac", where, self.msg) or opt_str(ip, "vif_mac", where, self.msg)
            if mac:
                entry["mac"] = mac
            port = opt_str(ip, "port_uuid", where, self.msg)
            if port:
                ports.setdefault(port, []).append(entry)
                continue
            portless.append(entry)
            for j, fip in enumerate(opt_list(ip, "floating_ips", where, self.msg) or []):
                fwhere = f"{where}.floating_ips[{j}]"
                fdata = fip if isinstance(fip, Mapping) else {"address": fip}
                faddr = req_str(fdata, "address", fwhere, self.msg)
                portless.append(
                    {
                        "address": faddr,
                        "kind": "floating",
                        "version": ip_version(faddr, f"{fwhere}.address", self.msg),
                    }
                )
        return ports, portless

    def version(self, delete: bool = False) -> str:
        d = self.data
        if delete:
            return self.msg.delete_version(
                d.get("deleted_at"), d.get("terminated_at"), d.get("updated_at")
            )
        return self.msg.version(d.get("updated_at"))


def flavor_fields(data: Mapping[str, Any], where: str, msg: Msg) -> dict[str, Any]:
    """FlavorPayload -> flavor fields (only those present). ``projects`` has
    no place in the flavor fields (see sync.changes.FIELDS) and is dropped."""
    fields: dict[str, Any] = {
        "name": opt_str(data, "name", where, msg),
        "cores": opt_int(data, "vcpus", where, msg),
        "memory": opt_int(data, "memory_mb", where, msg),
        "disk": opt_int(data, "root_gb", where, msg),
        "extra_specs": opt_dict(data, "extra_specs", where, msg),
    }
    is_public = data.get("is_public")
    if isinstance(is_public, bool):
        fields["is_public"] = is_public
    elif is_public is not None:
        raise msg.bad(f"{where}.is_public must be a boolean")
    return {k: v for k, v in fields.items() if v is not None}
