"""Nova notifications (versioned ``instance.*``/``flavor.*``/``compute_task.*``
and legacy ``compute.instance.*``) -> Changes.

Each instance action is authoritative only for the fields it changes (a
power_off sets the status, a resize the flavor, ...); ``create.end`` and
``update`` carry the whole instance. Payloads are snapshots of the instance
as the emitting service saw it, but some are stale copies (the source host's
``live_migration_post.end`` still names the source host), so we never take a
field from an event that did not change it.

Flavor external id = Nova's ``flavorid`` (the ``id`` the flavors API shows and
the server's ``flavor.id`` before microversion 2.47): versioned
``flavor.flavorid``; legacy ``instance_flavor_id``. Legacy ``instance_type_id``
is the database primary key, *not* a flavorid (the samples show m1.tiny with
``instance_type_id`` 2 and ``instance_flavor_id`` "1"; flavorid "2" is
m1.small), so a legacy payload without ``instance_flavor_id`` sets no flavor
rather than a wrong one; the full sync fills it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.changes import Kind, Op, parse_timestamp
from sync.choices import HostStatusChoices
from sync.drivers.base import Translation
from sync.drivers.openstack.common import (
    Msg,
    context_project,
    ignored,
    ip_version,
    opt_dict,
    opt_int,
    opt_list,
    opt_str,
    ovo,
    req_str,
)
from sync.drivers.openstack.status import host_status

__all__ = ["normalize_action", "translate_compute_task", "translate_flavor", "translate_instance"]

PHASES = frozenset({"start", "end", "error"})
# Legacy action names that do not become the versioned name by "." -> "_".
LEGACY_ALIASES = {
    "finish_resize": "resize_finish",
    "live_migration__post": "live_migration_post",
    "live_migration__rollback": "live_migration_rollback",
    "exists_verified": "exists",
}
# Very old Nova sent some actions without a phase; they mean "done".
PHASELESS_END = frozenset({"suspend", "resume"})

# Which host fields an action's .end event is authoritative for.
FULL = ("hostname", "status", "flavor", "image", "hypervisor", "tags", "metadata", "ips")
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "create": (*FULL, "launched_at"),
    "update": FULL,
    "unshelve": ("status", "hypervisor"),
    "shelve_offload": ("status", "hypervisor"),
    "live_migration_post_dest": ("status", "hypervisor"),
    "resize_finish": ("status", "flavor", "hypervisor"),
    "resize_confirm": ("status", "flavor", "hypervisor"),
    "resize_revert": ("status", "flavor", "hypervisor"),
    "rebuild": ("status", "image", "hypervisor"),
    "interface_attach": ("ips",),
    "interface_detach": ("ips",),
    "create_ip": ("ips",),  # legacy add-fixed-ip
    "delete_ip": ("ips",),  # legacy remove-fixed-ip
    **{
        action: ("status",)
        for action in (
            "power_on",
            "power_off",
            "shutdown",
            "pause",
            "unpause",
            "suspend",
            "resume",
            "shelve",
            "rescue",
            "unrescue",
            "reboot",
            "soft_delete",
            "restore",
        )
    },
}
NOT_INVENTORY = {
    "exists": "usage audit (instance.exists)",
    "live_migration_post": "sent by the source host with a stale instance.host; "
    "live_migration_post_dest carries the new hypervisor",
}


def normalize_action(event_type: str) -> tuple[str, str | None] | None:
    """``compute.instance.finish_resize.end`` -> ``("resize_finish", "end")``;
    ``instance.update`` -> ``("update", None)``. None if not an instance event."""
    if event_type.startswith("compute.instance."):
        rest, legacy = event_type[len("compute.instance.") :], True
    elif event_type.startswith("instance."):
        rest, legacy = event_type[len("instance.") :], False
    else:
        return None
    parts = rest.split(".")
    phase = parts.pop() if len(parts) > 1 and parts[-1] in PHASES else None
    action = "_".join(parts)
    if legacy:
        action = LEGACY_ALIASES.get(action, action)
        if phase is None and action in PHASELESS_END:
            phase = "end"
    return action, phase


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
        """Nova's vm_state (``state``; legacy falls back to state_description)."""
        raw = self.s("state") or (None if self.versioned else self.s("state_description"))
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
            times = [
                parse_timestamp(d.get(k)) for k in ("deleted_at", "terminated_at", "updated_at")
            ]
            latest = max((t for t in times if t is not None), default=None)
            return self.msg.version(latest)
        return self.msg.version(d.get("updated_at"))


def flavor_fields(data: Mapping[str, Any], where: str, msg: Msg) -> dict[str, Any]:
    """FlavorPayload -> flavor fields (only those present)."""
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


def translate_instance(msg: Msg) -> Translation:
    parsed = normalize_action(msg.event_type)
    if parsed is None:
        return ignored(f"{msg.event_type}: not an instance event")
    action, phase = parsed
    if phase == "start":
        return ignored(f"{msg.event_type}: '.start' notification, the action has not happened yet")
    if phase == "error":
        if action != "create":
            return ignored(f"{msg.event_type}: Nova sets no definite state on {action} errors")
        inst = Instance(msg)
        return Translation(
            changes=[
                *_project(inst),
                msg.change(
                    Kind.HOST,
                    Op.UPSERT,
                    inst.uuid,
                    _with_project(inst, {"status": HostStatusChoices.ERROR.value}),
                    version=inst.version(),
                ),
            ]
        )
    if action == "delete":
        if phase != "end":
            return ignored(f"{msg.event_type}: not the end of the delete")
        inst = Instance(msg)
        return Translation(
            changes=[msg.change(Kind.HOST, Op.DELETE, inst.uuid, version=inst.version(True))]
        )
    wanted = ACTION_FIELDS.get(action)
    if wanted is None or (phase is None and action != "update"):
        reason = NOT_INVENTORY.get(action, f"instance.{action} changes no inventory field")
        return ignored(f"{msg.event_type}: {reason}")
    if action == "create" and phase != "end":
        return ignored(f"{msg.event_type}: not the end of the create")
    return _host_changes(Instance(msg), wanted)


def _project(inst: Instance) -> list:
    """The project upsert for the instance's tenant (a copy: it only fills
    the name when the request context belongs to the same project)."""
    tenant = inst.s("tenant_id")
    if not tenant:
        return []
    ctx_id, ctx_name = context_project(inst.msg.message)
    fields = {"name": ctx_name} if ctx_name and ctx_id == tenant else {}
    return [
        inst.msg.change(Kind.PROJECT, Op.UPSERT, tenant, fields, version=inst.msg.copy_version())
    ]


def _with_project(inst: Instance, fields: dict[str, Any]) -> dict[str, Any]:
    tenant = inst.s("tenant_id")
    if tenant:
        fields["project"] = tenant
    return fields


def _host_changes(inst: Instance, wanted: tuple[str, ...]) -> Translation:
    msg = inst.msg
    version = inst.version()
    changes = _project(inst)
    fields: dict[str, Any] = {}
    host_ips: list = []
    if "hostname" in wanted and (name := inst.hostname()):
        fields["hostname"] = name
    if "status" in wanted and (status := inst.status()):
        fields["status"] = status
    if "flavor" in wanted and (flavor := inst.flavor()):
        fid, ffields = flavor
        changes.append(msg.change(Kind.FLAVOR, Op.UPSERT, fid, ffields, version=msg.copy_version()))
        fields["flavor"] = fid
    if "image" in wanted:
        known, image = inst.image()
        if known:
            fields["image"] = image  # None = volume-backed, no image
    if "hypervisor" in wanted and "host" in inst.data:
        fields["hypervisor"] = inst.s("host")  # None when shelved-offloaded
    if "tags" in wanted and (tags := inst.tags()) is not None:
        fields["tags"] = tags
    if "metadata" in wanted and (meta := inst.metadata()) is not None:
        fields["metadata"] = meta
    if "launched_at" in wanted and "launched_at" in inst.data:
        launched = parse_timestamp(inst.data.get("launched_at"))
        fields["launched_at"] = launched.isoformat() if launched else None
    if "ips" in wanted and (ips := inst.ips()) is not None:
        ports, portless = ips
        # Ports are their own host_ip objects (shared ids with Neutron events);
        # legacy fixed_ips have no port id and form the host's address set.
        for port_id, addresses in ports.items():
            host_ips.append(
                msg.change(
                    Kind.HOST_IP,
                    Op.UPSERT,
                    port_id,
                    {"host": inst.uuid, "port_id": port_id, "addresses": addresses},
                    version=version,
                )
            )
        if portless or not inst.versioned:
            fields["addresses"] = portless
    _with_project(inst, fields)
    changes.append(msg.change(Kind.HOST, Op.UPSERT, inst.uuid, fields, version=version))
    return Translation(changes=changes + host_ips)


def translate_flavor(msg: Msg) -> Translation:
    """Versioned flavor.create / flavor.update / flavor.delete."""
    op = msg.event_type.rsplit(".", 1)[-1]
    if op not in ("create", "update", "delete"):
        return ignored(f"{msg.event_type}: not a flavor change")
    data = ovo(msg.payload, "payload", msg)
    where = "payload.nova_object.data"
    fid = req_str(data, "flavorid", where, msg)
    version = msg.version()  # FlavorPayload has no timestamps of its own
    if op == "delete":
        return Translation(changes=[msg.change(Kind.FLAVOR, Op.DELETE, fid, version=version)])
    fields = flavor_fields(data, where, msg)
    return Translation(changes=[msg.change(Kind.FLAVOR, Op.UPSERT, fid, fields, version=version)])


def translate_compute_task(msg: Msg) -> Translation:
    """Conductor failures (``compute_task.<method>[.error]``): the conductor
    has set the instance's vm_state (``state``) itself, so it is authoritative."""
    payload = msg.payload
    if not isinstance(payload, Mapping):
        raise msg.bad(f"payload is not a JSON object (got {type(payload).__name__})")
    versioned = "nova_object.data" in payload
    data = ovo(payload, "payload", msg)
    where = "payload.nova_object.data" if versioned else "payload"
    uuid = req_str(data, "instance_uuid" if versioned else "instance_id", where, msg)
    status = host_status(opt_str(data, "state", where, msg))
    if status == HostStatusChoices.UNKNOWN:
        return ignored(f"{msg.event_type}: no instance state in the payload")
    return Translation(
        changes=[
            msg.change(Kind.HOST, Op.UPSERT, uuid, {"status": str(status)}, version=msg.version())
        ]
    )
