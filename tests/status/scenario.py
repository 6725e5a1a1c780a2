"""Nova notifications for the status tests, built from Nova's own samples
(tests/fixtures): a server's delete, and messages the driver ignores or
refuses."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tests.fixtures import load_nova_versioned, with_wire_fields

__all__ = ["bad_payload", "delete_end", "delete_start"]


def _for(sample: str, server_id: str) -> dict[str, Any]:
    message = copy.deepcopy(load_nova_versioned(sample))
    message["payload"]["nova_object.data"]["uuid"] = server_id
    return with_wire_fields(message, message_id=str(uuid.uuid4()),
                            timestamp="2026-01-01 00:00:00.000000")


def delete_end(server_id: str) -> dict[str, Any]:
    """instance.delete.end for one server: the driver deletes the host."""
    return _for("instance-delete-end.json", server_id)


def delete_start(server_id: str) -> dict[str, Any]:
    """instance.delete.start: valid, but nothing has happened yet (ignored)."""
    return _for("instance-delete-start.json", server_id)


def bad_payload() -> dict[str, Any]:
    """An instance event whose payload is not a Nova object (failed)."""
    return {"message_id": str(uuid.uuid4()), "event_type": "instance.update",
            "publisher_id": "nova-compute:compute", "payload": "not an object",
            "timestamp": "2026-01-01 00:00:00.000000", "priority": "INFO"}
