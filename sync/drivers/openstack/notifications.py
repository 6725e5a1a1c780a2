"""OpenStack notifications -> normalized Changes (the driver's event side).

Three steps, called by ``OpenStackDriver``:

* ``split``: transport unwrapping. A body may be a JSON list (a batch: the
  Ceilometer HTTP publisher, our own endpoint) and each message may be an
  oslo.messaging v2 envelope ``{"oslo.version": "2.0", "oslo.message":
  "<json>"}`` (``messagingv2`` driver), possibly nested under ``"request"``
  (sg-core / AMQP 1.0). Bare v1 messages (``_context_*`` keys) and the
  listener shape (``{ctxt, publisher_id, event_type, payload, metadata}``)
  pass through unchanged. A Ceilometer ``notifier://`` notification
  (``event_type`` ``event``, its payload a list of Ceilometer events) is
  split into its events. Ceilometer events are replaced by
  their ``raw`` notification when they carry one; bare Nova instance
  payloads (Ceilometer ``raw_only``) are wrapped as timestamped snapshots
  (see ``ceilometer``).
* ``describe``: dedup key (oslo ``message_id``), event type, timestamp.
* ``translate``: dispatch on the event type to ``nova``, ``glance``,
  ``neutron`` or ``keystone``. Anything else is *ignored*
  (with a reason), never an error: a shared notification topic carries many
  event types we do not care about. Malformed messages of an event type we
  do handle raise ``BadPayload`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sync.changes import parse_timestamp
from sync.drivers.base import BadPayload, EventInfo, Translation, body_hash
from sync.drivers.openstack import ceilometer
from sync.drivers.openstack.common import Msg, ignored
from sync.drivers.openstack.glance import translate_image
from sync.drivers.openstack.keystone import translate_project
from sync.drivers.openstack.neutron import translate_network
from sync.drivers.openstack.nova import (
    translate_compute_task,
    translate_flavor,
    translate_instance,
)

__all__ = ["describe", "split", "translate"]

OSLO_MESSAGE = "oslo.message"
OSLO_VERSION = "oslo.version"
MAX_NESTING = 4  # envelopes inside lists inside envelopes...: stop runaway input


def split(message: Any) -> Iterator[Any]:
    """Yield the individual notifications a received body holds."""
    yield from _split(message, 0)


def _split(message: Any, depth: int) -> Iterator[Any]:
    if depth > MAX_NESTING:
        raise BadPayload(f"envelopes/batches nested deeper than {MAX_NESTING} levels")
    if isinstance(message, bytes | bytearray | str):
        message = _loads(message, "message body")
    if isinstance(message, list):
        for item in message:
            yield from _split(item, depth + 1)
        return
    inner = _unwrap(message)
    if inner is not None:
        yield from _split(inner, depth + 1)
    elif ceilometer.is_event_batch(message):
        for event in message["payload"]:  # notifier://: each event as if posted alone
            if isinstance(event, dict):
                yield from _split(event, depth + 1)
            else:
                yield event  # not an event: it fails alone, its neighbours are recorded
    elif ceilometer.is_event(message) and (raw := ceilometer.raw_notification(message)):
        yield from _split(raw, depth + 1)  # store_raw: the notification itself
    elif ceilometer.is_instance_payload(message):
        yield ceilometer.wrap_raw_only(message)  # raw_only: a timestamped snapshot
    else:
        yield _scrub(message)


# Keystone tokens that legacy notifications carry in their request context:
# never needed for the inventory, and the inbox stores what split() yields.
_SECRET_KEYS = frozenset({"_context_auth_token", "auth_token", "_context_auth_token_info"})


def _scrub(message: Any) -> Any:
    if not isinstance(message, Mapping) or not (
        _SECRET_KEYS & message.keys() or isinstance(message.get("ctxt"), Mapping)
    ):
        return message
    out = {k: v for k, v in message.items() if k not in _SECRET_KEYS}
    if isinstance(out.get("ctxt"), Mapping):
        out["ctxt"] = {k: v for k, v in out["ctxt"].items() if k not in _SECRET_KEYS}
    return out


def _unwrap(message: Any) -> Any | None:
    """The inner message of an oslo v2 envelope (also under ``request``), or
    None if ``message`` is not an envelope."""
    if not isinstance(message, Mapping):
        return None
    if OSLO_MESSAGE not in message:
        request = message.get("request")
        if isinstance(request, Mapping) and OSLO_MESSAGE in request:
            message = request
        else:
            return None
    version = message.get(OSLO_VERSION)
    if version is not None and not str(version).startswith("2."):
        raise BadPayload(f"unsupported oslo.version {version!r} (expected 2.x)")
    raw = message[OSLO_MESSAGE]
    if not isinstance(raw, str | bytes | bytearray):
        raise BadPayload(f"oslo.message must be a JSON string, not {type(raw).__name__}")
    inner = _loads(raw, "oslo.message")
    if not isinstance(inner, Mapping | list):
        raise BadPayload(f"oslo.message holds a JSON {type(inner).__name__}, not an object")
    return inner


def _loads(raw: str | bytes | bytearray, what: str) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BadPayload(f"{what} is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (truncated?)" if at_end else ""
        raise BadPayload(
            f"{what} is not valid JSON{hint}: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (char {exc.pos} of {len(raw)})"
        ) from None


def describe(message: Any) -> EventInfo:
    """Dedup key, event type and time of one message. Never raises: a message
    that cannot be described is keyed by its body hash and fails later in
    ``translate`` with a precise reason."""
    try:
        inner = _unwrap(message)
    except BadPayload:
        inner = None
    if inner is not None and isinstance(inner, Mapping):
        message = inner
    if not isinstance(message, Mapping):
        return EventInfo(key=body_hash(message))
    if ceilometer.is_event(message):
        return ceilometer.describe_event(message)
    if ceilometer.is_raw_only(message):
        return ceilometer.describe_raw_only(message)
    meta = message.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    key = message.get("message_id") or meta.get("message_id")
    event_type = message.get("event_type")
    return EventInfo(
        key=key if isinstance(key, str) and key else body_hash(message),
        event_type=event_type if isinstance(event_type, str) else "",
        occurred_at=parse_timestamp(message.get("timestamp") or meta.get("timestamp")),
    )


Handler = Callable[[Msg], Translation]


def _handler(event_type: str) -> Handler | None:
    if event_type.startswith(("instance.", "compute.instance.")):
        return translate_instance
    if event_type.startswith("compute_task."):
        return translate_compute_task
    if event_type in ("flavor.create", "flavor.update", "flavor.delete"):
        return translate_flavor
    if event_type.startswith("image."):
        return translate_image
    if event_type.startswith(("port.", "floatingip.")):
        return translate_network
    if event_type.startswith("identity.project."):
        return translate_project
    return None


def translate(message: Any) -> Translation:
    """The Changes for one message (as yielded by ``split``)."""
    inner = _unwrap(message)
    if inner is not None:
        if not isinstance(inner, Mapping):
            raise BadPayload("the envelope holds a batch: split() it first")
        message = inner
    if not isinstance(message, Mapping):
        raise BadPayload(f"a notification must be a JSON object, not {type(message).__name__}")
    if ceilometer.is_event(message):
        raw = ceilometer.raw_notification(message)
        return translate(raw) if raw is not None else ceilometer.translate_event(message)
    if ceilometer.is_raw_only(message):
        return ceilometer.translate_raw_only(message)
    info = describe(message)
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise BadPayload("message has no event_type (not an OpenStack notification?)")
    event_type = event_type.strip()
    handler = _handler(event_type)
    if handler is None:
        return ignored(f"{event_type}: not an inventory event")
    priority = str(message.get("priority") or "").upper()
    payload = message.get("payload")
    if isinstance(payload, str) and priority in ("ERROR", "WARN", "WARNING", "CRITICAL"):
        return ignored(f"{event_type}: {priority} notification with a text payload")
    result = handler(Msg(info.key, event_type, info.occurred_at, message))
    if result.changes and info.occurred_at is None:
        meta = message.get("metadata")
        raw = message.get("timestamp") or (meta.get("timestamp") if isinstance(meta, Mapping) else None)
        if raw:  # present but not a time: these changes could not be ordered
            raise BadPayload(f"{event_type}: message timestamp {str(raw)[:100]!r} is not a date")
    return result
