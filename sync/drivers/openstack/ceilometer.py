"""Ceilometer's HTTP publisher (``ceilometer.publisher.http.HttpPublisher``)
-> the OpenStack driver.

Ceilometer 27 POSTs a JSON array (batching is on by default) in one of two
shapes, and this module turns both into the Changes a direct notification
gives (``notifications`` calls the hooks below):

* **Events** ``{"message_id", "event_type", "generated", "traits": [[name,
  dtype, value], ...], "raw": {...}}``. ``message_id`` and ``generated`` are
  the notification's own ``metadata.message_id``/``timestamp``
  (``ceilometer.event.converter``), so the dedup key is the same as for the
  notification posted directly.

  - ``raw`` is the whole notification, in the oslo listener shape ``{ctxt,
    publisher_id, event_type, payload, metadata}``, when ceilometer.conf has
    ``[event] store_raw = info``. ``split`` hands it on *instead of* the
    event, so it is recorded, deduplicated and translated exactly as if it
    had arrived directly.
  - Without ``raw`` (``{}``) only the traits carry data. We rebuild the
    payload keys the default ``event_definitions.yaml`` copied into traits
    and run the translator of the notification on them, so the same rules
    apply:

    * ``compute.instance.*``: instance id, name, state, flavor, project,
      hypervisor (see ``HOST_IS_EMITTER``), launch/delete times. Not carried:
      IP addresses, image, tags, metadata, the project name.
    * ``image.create/update/upload/delete``: id (``resource_id``), name,
      status, deletion. Not carried: visibility, os_distro, os_version,
      architecture, min_disk, min_ram.
    * ``port.delete.end`` / ``floatingip.delete.end``: the deletion, when
      ``resource_id`` names the resource (Neutron puts the whole resource
      in its delete payload; older Neutron only ``<resource>_id``, which
      no trait reads). Creations and updates carry only id, name and
      project, not the device or the addresses: ignored with that reason.
    * ``identity.project.*``: the project id, as the notification itself.

    A change applied from traits carries a ``note`` naming what the traits
    could not carry (kept in the event's result); an event that cannot be
    applied at all is ignored with the reason.
  - A ``notifier://`` publisher wraps a list of such events in one oslo
    notification (``event_type`` ``event``, priority SAMPLE): ``split``
    hands on each event (``is_event_batch``), so each is recorded and
    deduplicated by its own ``message_id``.
* **raw_only** (publisher option ``raw_only=True``): a list of bare
  notification payloads, no event type, no id, no time. A payload that is a
  Nova instance (legacy or versioned) is a *state snapshot* of that
  instance: ``split`` wraps it with the time the worker received it (the
  only ordering the format allows, kept in the stored body so a replay
  gives the same version), and ``translate`` upserts its state, or deletes
  the host when the state is ``deleted``. Other payloads stay unwrapped and
  fail as before (no ``event_type``).

Nothing here may raise anything but ``BadPayload`` on bad input: the worker
records that as a failed event and goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sync.changes import parse_timestamp
from sync.choices import HostStatusChoices
from sync.drivers.base import BadPayload, EventInfo, Translation, body_hash
from sync.drivers.openstack.common import Msg, ignored
from sync.drivers.openstack.glance import UPSERT_EVENTS as IMAGE_UPSERTS
from sync.drivers.openstack.glance import translate_image
from sync.drivers.openstack.keystone import translate_project
from sync.drivers.openstack.neutron import translate_network
from sync.drivers.openstack.nova import normalize_action, translate_instance
from sync.drivers.openstack.nova_payload import Instance

__all__ = [
    "RAW_ONLY",
    "describe_event",
    "describe_raw_only",
    "is_event",
    "is_event_batch",
    "is_instance_payload",
    "is_raw_only",
    "raw_notification",
    "translate_event",
    "translate_raw_only",
    "wrap_raw_only",
]

# Key of the wrapper ``split`` puts around a raw_only instance payload.
RAW_ONLY = "ceilometer.raw_only"
RAW_ONLY_EVENT_TYPE = "ceilometer.raw_only"
RECEIVED_AT = "received_at"

# Traits of the default event_definitions.yaml (``compute.instance.*``) that
# are legacy Nova payload keys under the same name.
PAYLOAD_TRAITS = (
    "instance_id",
    "display_name",
    "tenant_id",
    "state",
    "instance_type",
    "instance_flavor_id",
    "memory_mb",
    "vcpus",
    "root_gb",
    "disk_gb",
    "launched_at",
    "deleted_at",
)
# The ``host`` trait is the publisher's host (``publisher_id`` "compute.<host>"),
# not ``payload.host``. It names the instance's hypervisor only for actions
# that the compute service *hosting the instance afterwards* emits. Not for
# ``update`` (API, conductor or a migration's other side may send it) nor
# ``resize_confirm`` (sent by the source host; the instance is on the
# destination): there the hypervisor is left unset.
HOST_IS_EMITTER = frozenset(
    {
        "create",
        "unshelve",
        "rebuild",
        "resize_finish",
        "resize_revert",
        "live_migration_post_dest",
    }
)
# After shelve_offload the instance has no host (Nova sets ``host`` None
# before the .end notification), whoever sent it.
HOST_CLEARED = frozenset({"shelve_offload"})

OSLO_KEYS = ("oslo.message", "oslo.version", "request")

STORE_RAW = "set [event] store_raw = info to receive whole notifications"
NOT_CARRIED = {
    "instance": "IP addresses, image, tags, metadata, project name",
    "image": "visibility, os_distro, os_version, architecture, min_disk, min_ram",
}


# -- recognising the shapes ---------------------------------------------------


def is_event(message: Any) -> bool:
    """A serialized ``ceilometer.event.models.Event``: it has traits and a
    ``generated`` time and, unlike every notification, no ``payload``."""
    return (
        isinstance(message, Mapping)
        and "traits" in message
        and "generated" in message
        and "payload" not in message
    )


def is_event_batch(message: Any) -> bool:
    """Ceilometer's ``notifier://`` publisher: one notification
    (``notifier.sample({}, event_type="event", payload=[...])``) whose
    payload is a list of serialized events."""
    if not isinstance(message, Mapping) or not isinstance(message.get("event_type"), str):
        return False
    payload = message.get("payload")
    return isinstance(payload, list) and any(is_event(item) for item in payload)


def raw_notification(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The original notification an event carries (``store_raw``), or None
    when ``raw`` is empty or is not a notification (then the traits are used)."""
    raw = event.get("raw")
    if not isinstance(raw, Mapping) or not raw:
        return None
    if not isinstance(raw.get("event_type"), str) or "payload" not in raw:
        return None
    return raw


def is_instance_payload(message: Any) -> bool:
    """A bare Nova instance payload (what ``raw_only`` posts): legacy
    ``info_from_instance`` dicts have ``instance_id`` next to instance
    fields; versioned ones are an ``Instance*Payload`` object. ``state``
    alone is not enough: the scheduler's ``scheduler.run_instance`` payload
    has ``instance_id`` and ``state`` but describes a request, not the
    instance (and is ignored when it arrives as a notification)."""
    if not isinstance(message, Mapping):
        return False
    if any(key in message for key in ("event_type", "payload", "traits", *OSLO_KEYS)):
        return False
    name = message.get("nova_object.name")
    if isinstance(name, str):
        data = message.get("nova_object.data")
        return (
            name.startswith("Instance")
            and name.endswith("Payload")
            and isinstance(data, Mapping)
            and "uuid" in data
        )
    return isinstance(message.get("instance_id"), str) and any(
        key in message for key in ("display_name", "tenant_id", "instance_type")
    )


def wrap_raw_only(
    payload: Mapping[str, Any], received_at: datetime | None = None
) -> dict[str, Any]:
    """Mark a raw_only payload and stamp it with the time it was received."""
    when = received_at or datetime.now(UTC)
    return {RAW_ONLY: dict(payload), RECEIVED_AT: when.isoformat()}


def is_raw_only(message: Any) -> bool:
    return isinstance(message, Mapping) and RAW_ONLY in message


# -- describe -------------------------------------------------------------------


def describe_event(event: Mapping[str, Any]) -> EventInfo:
    """The notification's message_id, event type and time (never raises)."""
    key = event.get("message_id")
    event_type = event.get("event_type")
    return EventInfo(
        key=key if isinstance(key, str) and key else body_hash(event),
        event_type=event_type if isinstance(event_type, str) else "",
        occurred_at=parse_timestamp(event.get("generated")),
    )


def describe_raw_only(message: Mapping[str, Any]) -> EventInfo:
    """A snapshot has no id: the body hash, receipt time included. Two equal
    payloads received at different times are different snapshots (active ->
    stopped -> active must not be deduplicated into "stopped"); applying one
    twice is harmless because a snapshot is idempotent."""
    return EventInfo(
        key=body_hash(message),
        event_type=RAW_ONLY_EVENT_TYPE,
        occurred_at=parse_timestamp(message.get(RECEIVED_AT)),
    )


# -- translate: events without raw (traits) ------------------------------------------


def _traits(event: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    """``[[name, dtype, value], ...]`` -> {name: value} (first wins)."""
    raw = event.get("traits")
    if not isinstance(raw, list):
        raise BadPayload(f"{event_type}: traits must be a JSON array, not {type(raw).__name__}")
    out: dict[str, Any] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str):
            raise BadPayload(f"{event_type}: traits[{i}] is not a [name, type, value] triple")
        out.setdefault(item[0], item[2])
    return out


def translate_event(event: Mapping[str, Any]) -> Translation:
    """A Ceilometer event whose ``raw`` is empty: rebuild the payload the
    default traits carry and translate it like the notification."""
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise BadPayload("Ceilometer event has no event_type")
    event_type = event_type.strip()
    info = describe_event(event)
    traits = _traits(event, event_type)
    if event_type.startswith("compute.instance."):
        rebuild = _instance_payload
    elif event_type.startswith("image."):
        rebuild = _image_payload
    elif event_type.startswith(("port.", "floatingip.")):
        rebuild = _network_payload
    elif event_type.startswith("identity.project."):
        rebuild = _project_payload
    else:
        return ignored(
            f"{event_type}: Ceilometer event without raw; only compute.instance.*, image.*, "
            f"port.*, floatingip.* and identity.project.* traits are mapped ({STORE_RAW})"
        )
    rebuilt = rebuild(event_type, traits)
    if isinstance(rebuilt, Translation):
        return rebuilt
    payload, handler, note = rebuilt
    message = {
        "event_type": event_type,
        "message_id": info.key,
        "timestamp": event.get("generated"),
        "payload": payload,
    }
    try:
        result = handler(Msg(info.key, event_type, info.occurred_at, message))
    except BadPayload as exc:
        raise BadPayload(f"{exc} (rebuilt from Ceilometer event traits)") from None
    if note and any(c.fields for c in result.changes):
        result.note = f"traits carry no {note} ({STORE_RAW})"
    return result


Rebuilt = tuple[dict[str, Any], Any, str | None] | Translation


def _instance_payload(event_type: str, traits: Mapping[str, Any]) -> Rebuilt:
    """The legacy Nova payload keys the traits copied, and the hypervisor
    where the emitter is the instance's host."""
    payload = {name: traits[name] for name in PAYLOAD_TRAITS if name in traits}
    parsed = normalize_action(event_type)
    action = parsed[0] if parsed else ""
    service = traits.get("service")
    from_compute = isinstance(service, str) and (
        service == "compute" or service.startswith("compute.")
    )
    if action in HOST_CLEARED:
        payload["host"] = None
    elif action in HOST_IS_EMITTER and from_compute and traits.get("host"):
        payload["host"] = traits["host"]
    return payload, translate_instance, NOT_CARRIED["instance"]


def _resource_id(traits: Mapping[str, Any]) -> str | None:
    value = traits.get("resource_id")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _image_payload(event_type: str, traits: Mapping[str, Any]) -> Rebuilt:
    """``image.create/update/upload/delete``: id, name, status, deleted_at."""
    if event_type not in IMAGE_UPSERTS and event_type != "image.delete":
        return ignored(f"{event_type}: not an image record change (members, downloads, tasks)")
    image_id = _resource_id(traits)
    if image_id is None:
        return ignored(
            f"{event_type}: the Ceilometer event has no resource_id trait (the default event "
            f"definitions give this event type none), so nothing names the image ({STORE_RAW})"
        )
    payload = {"id": image_id}
    for name in ("name", "status", "deleted_at"):
        if traits.get(name) not in (None, ""):
            payload[name] = traits[name]
    return payload, translate_image, NOT_CARRIED["image"]


def _network_payload(event_type: str, traits: Mapping[str, Any]) -> Rebuilt:
    """Deletions of ports and floating IPs (the only changes the traits
    identify completely)."""
    resource, _, action = event_type.partition(".")
    if action != "delete.end":
        if action in ("create.end", "update.end"):
            return ignored(
                f"{event_type}: Ceilometer's default traits carry only the {resource}'s id, "
                f"name and project, not its device, port or addresses: nothing to update "
                f"({STORE_RAW})"
            )
        return translate_network(Msg("", event_type, None, {"payload": {}}))
    obj_id = _resource_id(traits)
    if obj_id is None:
        return ignored(
            f"{event_type}: the Ceilometer event has no resource_id trait (this Neutron sent "
            f"only {resource}_id, which the default event definitions do not read), so "
            f"nothing names the deleted {resource} ({STORE_RAW})"
        )
    return {f"{resource}_id": obj_id}, translate_network, None


def _project_payload(event_type: str, traits: Mapping[str, Any]) -> Rebuilt:
    """``identity.project.created/updated/deleted``: ``resource_id`` is the
    notification's ``resource_info`` (all the notification says too)."""
    project_id = _resource_id(traits)
    if project_id is None:
        return ignored(f"{event_type}: the Ceilometer event has no resource_id trait")
    return {"resource_info": project_id}, translate_project, None


# -- translate: raw_only snapshots -------------------------------------------------------


def translate_raw_only(message: Mapping[str, Any]) -> Translation:
    """A raw_only instance payload: the instance's state at receipt time
    (an ``update``), or its deletion when the state says ``deleted``."""
    payload = message.get(RAW_ONLY)
    if not isinstance(payload, Mapping):
        raise BadPayload(f"{RAW_ONLY} must hold a JSON object, not {type(payload).__name__}")
    info = describe_raw_only(message)
    versioned = "nova_object.data" in payload or "nova_object.name" in payload
    prefix = "instance." if versioned else "compute.instance."
    try:
        probe = Msg(info.key, f"{prefix}update", info.occurred_at, {"payload": payload})
        deleted = Instance(probe).status() == HostStatusChoices.DELETED
        event_type = f"{prefix}delete.end" if deleted else f"{prefix}update"
        synthetic = {
            "event_type": event_type,
            "message_id": info.key,
            "timestamp": message.get(RECEIVED_AT),
            "payload": payload,
        }
        return translate_instance(Msg(info.key, event_type, info.occurred_at, synthetic))
    except BadPayload as exc:
        raise BadPayload(f"{exc} (Ceilometer raw_only payload)") from None
