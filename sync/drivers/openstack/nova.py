"""Nova notifications (versioned ``instance.*``/``flavor.*``/``compute_task.*``
and legacy ``compute.instance.*``) -> Changes.

Each instance action is authoritative only for the fields it changes (a
power_off sets the status, a resize the flavor, ...); ``create.end`` and
``update`` carry the whole instance. Payloads are snapshots of the instance
as the emitting service saw it, but some are stale copies (the source host's
``live_migration_post.end`` still names the source host), so we never take a
field from an event that did not change it.

The one exception is the instance's IPs: every payload lists them from the
instance's network info cache as it stands when the notification is sent
(versioned ``ip_addresses``, legacy ``fixed_ips`` when Nova passed the
network info), so every completed action states the host's complete port
set at its version. Taking it from all of them makes the newest statement
win (an ``update`` listing no port, then a ``power_off.end`` listing it
again: the port is attached), as ``sync.apply.addresses`` decides membership.

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
from sync.drivers.openstack.common import Msg, context_project, ignored, opt_str, ovo, req_str
from sync.drivers.openstack.nova_payload import Instance, flavor_fields
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

# Which host fields an action's .end event is authoritative for ("ips": the
# complete port / address set, which every payload states; module doc).
FULL = ("hostname", "status", "flavor", "image", "hypervisor", "tags", "metadata", "ips")
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "create": (*FULL, "launched_at"),
    "update": FULL,
    "unshelve": ("status", "hypervisor", "ips"),
    "shelve_offload": ("status", "hypervisor", "ips"),
    "live_migration_post_dest": ("status", "hypervisor", "ips"),
    "resize_finish": ("status", "flavor", "hypervisor", "ips"),
    "resize_confirm": ("status", "flavor", "hypervisor", "ips"),
    "resize_revert": ("status", "flavor", "hypervisor", "ips"),
    "rebuild": ("status", "image", "hypervisor", "ips"),
    "interface_attach": ("ips",),
    "interface_detach": ("ips",),
    "create_ip": ("ips",),  # legacy add-fixed-ip
    "delete_ip": ("ips",),  # legacy remove-fixed-ip
    **{
        action: ("status", "ips")
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


def translate_instance(msg: Msg) -> Translation:
    """``instance.*`` / ``compute.instance.*``: host (+ flavor, project,
    host_ip) changes for completed actions; ``.start`` and most ``.error``
    events are ignored so a half-done action never overwrites state."""
    parsed = normalize_action(msg.event_type)
    if parsed is None:
        return ignored(f"{msg.event_type}: not an instance event")
    action, phase = parsed
    if phase == "start":
        return ignored(f"{msg.event_type}: '.start' notification, the action has not happened yet")
    if phase == "error":
        if action != "create":
            return ignored(f"{msg.event_type}: Nova sets no definite state on {action} errors")
        # A failed build ends in ERROR, unless Nova reschedules it (the
        # StackTach sample says "was re-scheduled"); the rescheduled build's
        # later updates then carry newer versions and win.
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
    changes: list = []
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
        if inst.versioned:  # versioned ip_addresses name every port: the complete set
            fields["port_ids"] = sorted(ports)
    if not fields and not host_ips:
        return ignored(f"{msg.event_type}: the payload carries none of {', '.join(wanted)}")
    if fields:  # an interface event may only touch the ports
        _with_project(inst, fields)
        changes = [
            *_project(inst),
            *changes,
            msg.change(Kind.HOST, Op.UPSERT, inst.uuid, fields, version=version),
        ]
    return Translation(changes=changes + host_ips)


def translate_flavor(msg: Msg) -> Translation:
    """Versioned flavor.create / flavor.update / flavor.delete."""
    op = msg.event_type.rsplit(".", 1)[-1]
    if op not in ("create", "update", "delete"):
        return ignored(f"{msg.event_type}: not a flavor change")
    data = ovo(msg.payload, "payload", msg)
    where = "payload.nova_object.data"
    fid = req_str(data, "flavorid", where, msg)
    if op == "delete":  # FlavorPayload has no timestamps of its own
        return Translation(
            changes=[msg.change(Kind.FLAVOR, Op.DELETE, fid, version=msg.delete_version())]
        )
    version = msg.version()
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
