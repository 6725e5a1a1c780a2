"""Glance ``image.*`` notifications -> image Changes.

The payload of every INFO image event is the image record (v1 and v2 share
the shape: ``properties`` holds the extra properties, ``is_public`` and/or
``visibility``); ``image.delete`` sends the full record with ``deleted: true``
(older docs: just the id as a string, accepted too). WARN/ERROR events carry
a text message and are ignored by the dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.changes import Kind, Op
from sync.drivers.base import Translation
from sync.drivers.openstack.common import Msg, ignored, opt_dict, opt_int, opt_str, req_str

__all__ = ["translate_image"]

UPSERT_EVENTS = frozenset(
    {
        "image.create",
        "image.update",
        "image.upload",
        "image.activate",
        "image.deactivate",
        "image.reactivate",
    }
)


def translate_image(msg: Msg) -> Translation:
    et = msg.event_type
    if et == "image.delete":
        return _delete(msg)
    if et not in UPSERT_EVENTS:
        return ignored(f"{et}: not an image record change (members, downloads, tasks)")
    payload = msg.payload
    if not isinstance(payload, Mapping):
        raise msg.bad(f"payload is not a JSON object (got {type(payload).__name__})")
    image_id = req_str(payload, "id", "payload", msg)
    return Translation(
        changes=[
            msg.change(
                Kind.IMAGE,
                Op.UPSERT,
                image_id,
                image_fields(payload, msg),
                version=msg.version(payload.get("updated_at")),
            )
        ]
    )


def _delete(msg: Msg) -> Translation:
    payload = msg.payload
    if isinstance(payload, str) and payload.strip():
        image_id, times = payload.strip(), ()
    elif isinstance(payload, Mapping):
        image_id = req_str(payload, "id", "payload", msg)
        times = (payload.get("deleted_at"), payload.get("updated_at"))
    else:
        raise msg.bad(f"payload is neither an image record nor an image id ({payload!r:.40})")
    return Translation(
        changes=[msg.change(Kind.IMAGE, Op.DELETE, image_id, version=msg.delete_version(*times))]
    )


def image_fields(payload: Mapping[str, Any], msg: Msg) -> dict[str, Any]:
    """Image record -> image fields (only those the record carries)."""
    props = opt_dict(payload, "properties", "payload", msg) or {}

    def prop(key: str) -> str | None:
        # v1 keeps extra properties under ``properties``; some emitters
        # flatten them to the top level.
        if props.get(key) not in (None, ""):
            return opt_str(props, key, "payload.properties", msg)
        return opt_str(payload, key, "payload", msg)

    fields: dict[str, Any] = {
        "name": opt_str(payload, "name", "payload", msg),
        "status": (opt_str(payload, "status", "payload", msg) or "").lower() or None,
        "os_distro": prop("os_distro"),
        "os_version": prop("os_version"),
        "architecture": prop("architecture"),
        "min_disk": opt_int(payload, "min_disk", "payload", msg),
        "min_ram": opt_int(payload, "min_ram", "payload", msg),
    }
    visibility = opt_str(payload, "visibility", "payload", msg)
    if visibility is None and isinstance(payload.get("is_public"), bool):
        visibility = "public" if payload["is_public"] else "private"
    fields["visibility"] = visibility
    return {k: v for k, v in fields.items() if v is not None}
