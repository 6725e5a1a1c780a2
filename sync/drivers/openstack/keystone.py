"""Keystone ``identity.project.*`` notifications -> project Changes."""

from __future__ import annotations

from collections.abc import Mapping

from sync.changes import Kind, Op
from sync.drivers.base import Translation
from sync.drivers.openstack.common import Msg, ignored, req_str

__all__ = ["translate_project"]


def translate_project(msg: Msg) -> Translation:
    """Keystone ``identity.project.created/updated/deleted`` (basic format:
    ``payload.resource_info`` = project id; CADF: ``payload.target.id``).
    Neither carries the name, so the upsert only makes the project known."""
    action = msg.event_type.rsplit(".", 1)[-1]
    if action not in ("created", "updated", "deleted"):
        return ignored(f"{msg.event_type}: not a project change")
    payload = msg.payload
    if not isinstance(payload, Mapping):
        raise msg.bad(f"payload is not a JSON object (got {type(payload).__name__})")
    target = payload.get("target")
    if "resource_info" not in payload and isinstance(target, Mapping):
        project_id = req_str(target, "id", "payload.target", msg)
    else:
        project_id = req_str(payload, "resource_info", "payload", msg)
    if action == "deleted":
        return Translation(
            changes=[msg.change(Kind.PROJECT, Op.DELETE, project_id, version=msg.delete_version())]
        )
    return Translation(
        changes=[msg.change(Kind.PROJECT, Op.UPSERT, project_id, {}, version=msg.version())]
    )
