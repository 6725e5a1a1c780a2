"""What the relay sends for one notification taken off the bus.

The body is oslo.messaging's listener shape, which cloudsync's OpenStack
driver reads as it is::

    {"ctxt": {...}, "publisher_id": "...", "event_type": "...",
     "priority": "INFO", "payload": {...},
     "metadata": {"message_id": "...", "timestamp": "..."}}

The request context is stripped of secrets first, at any depth: Keystone
tokens, token info, service catalogs, credentials (cloudsync never needs them, and its
inbox stores what it receives). A message that is not a notification
(no event type, no payload, not an object) is refused here with a reason,
so it can be dropped with a log line instead of blocking the queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Malformed", "encode", "scrub_context", "to_body"]

# Keys of the request context that hold secrets, whatever their case.
SECRET_CONTEXT_KEYS = frozenset(
    {
        "auth_token",
        "auth_token_info",
        "service_catalog",
        "service_token",
        "auth_plugin",
        "password",
        "secret",
        "trust_id",
        "application_credential",
    }
)
# ...and any key containing one of these words (e.g. keystone's "token_info",
# a driver's "service_auth_token", "os_password").
SECRET_WORDS = ("token", "password", "secret", "catalog", "credential")
# RPC bookkeeping oslo.messaging adds to every unpacked context: never useful.
RPC_KEYS = frozenset({"msg_id", "reply_q", "client_timeout"})


class Malformed(Exception):
    """A message on the bus that is not a notification the relay can send."""


def _secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_CONTEXT_KEYS or any(word in lowered for word in SECRET_WORDS)


def _scrub(value: Any) -> Any:
    """``value`` with every secret key removed at any depth (dicts in lists
    in dicts...); keys that are not strings go too (JSON has none)."""
    if isinstance(value, Mapping):
        return {
            key: _scrub(item)
            for key, item in value.items()
            if isinstance(key, str) and not _secret(key)
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def scrub_context(ctxt: Any) -> dict[str, Any]:
    """The request context without secrets, at any depth (a token inside a
    nested ``auth`` dict or a list of credentials goes too), and without
    RPC bookkeeping."""
    if not isinstance(ctxt, Mapping):
        return {}
    return {key: value for key, value in _scrub(ctxt).items() if key not in RPC_KEYS}


def to_body(ctxt: Any, message: Any) -> dict[str, Any]:
    """The listener-shaped notification for one message as oslo.messaging
    unpacked it (``ctxt`` from the ``_context_*`` keys, ``message`` the rest).
    Raises ``Malformed`` with a reason."""
    if not isinstance(message, Mapping):
        raise Malformed(f"not a JSON object but {type(message).__name__}")
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise Malformed("no event_type")
    if "payload" not in message:
        raise Malformed(f"{event_type}: no payload")
    priority = message.get("priority")
    publisher_id = message.get("publisher_id")
    message_id = message.get("message_id")
    timestamp = message.get("timestamp")
    return {
        "ctxt": scrub_context(ctxt),
        "publisher_id": publisher_id if isinstance(publisher_id, str) else None,
        "event_type": event_type,
        "priority": priority.upper() if isinstance(priority, str) else None,
        "payload": message["payload"],
        "metadata": {
            "message_id": message_id if isinstance(message_id, str) else None,
            "timestamp": timestamp if isinstance(timestamp, str) else None,
        },
    }


def encode(body: Mapping[str, Any]) -> bytes:
    """The JSON text of one notification (ASCII: lone surrogates stay escaped)."""
    try:
        return json.dumps(body, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise Malformed(f"{body.get('event_type')}: not JSON-serializable: {exc}") from None
