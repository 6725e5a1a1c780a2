"""Helpers shared by the OpenStack notification translators.

Every translator gets a ``Msg`` (the parsed message plus what the inbox
recorded about it) and uses the checked accessors below, so a malformed
payload always fails with a ``BadPayload`` that names the offending field
instead of a ``KeyError``/``TypeError`` deep inside a translator.

Version rule (one for every kind, see ``Msg.version``): the ordering key of a
change is ``make_version(object_time, message_time)`` where ``object_time`` is
the payload's own ``updated_at`` (``deleted_at``/``terminated_at`` for
deletes) and falls back to the message timestamp when the payload has none
(legacy Nova, Neutron and Flavor payloads carry no ``updated_at``). Without the
fallback such changes would sort before *every* row version written by a
full sync and could never update anything again. Deletes use the latest of
their deletion times and the message time (``Msg.delete_version``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.changes import Change, Kind, Op, make_version, parse_timestamp
from sync.drivers.base import BadPayload, Translation

__all__ = [
    "Msg",
    "context_project",
    "ignored",
    "ip_version",
    "opt_dict",
    "opt_int",
    "opt_list",
    "opt_str",
    "ovo",
    "req_str",
]


def ignored(reason: str) -> Translation:
    """A valid message that does not touch the inventory."""
    return Translation(ignored=reason)


@dataclass(frozen=True, slots=True)
class Msg:
    """One split message, ready for a translator."""

    key: str  # dedup key; becomes every Change's source_ref
    event_type: str
    timestamp: datetime | None
    message: Mapping[str, Any]

    @property
    def payload(self) -> Any:
        return self.message.get("payload")

    def version(self, *object_times: Any) -> str:
        """Ordering key: first parseable object time (else the message time),
        then the message time as tie-breaker."""
        first = None
        for value in object_times:
            first = parse_timestamp(value)
            if first is not None:
                break
        return make_version(first or self.timestamp, self.timestamp)

    def delete_version(self, *object_times: Any) -> str:
        """Ordering key of a delete: the latest of the payload's deletion
        times and the message time. Legacy ``deleted_at`` is the database
        time, which can be *earlier* than the message time of the update
        Nova emitted just before the delete (notigen delete sequence); taking
        the latest keeps a delete at or after everything that preceded it."""
        times = [parse_timestamp(v) for v in (*object_times, self.timestamp)]
        latest = max((t for t in times if t is not None), default=None)
        return make_version(latest, self.timestamp)

    def copy_version(self) -> str:
        """Version for data copied from another object (a flavor embedded in
        an instance, a project name from the request context). It sorts
        before any version of the object's own events or full syncs, so a
        copy only fills empty fields and never overwrites the authority."""
        return make_version(None, self.timestamp)

    def change(
        self,
        kind: Kind,
        op: Op,
        external_id: str,
        fields: Mapping[str, Any] | None = None,
        *,
        version: str,
    ) -> Change:
        return Change(
            kind=kind,
            op=op,
            external_id=external_id,
            fields=dict(fields or {}),
            version=version,
            source_ref=self.key,
        )

    def bad(self, what: str) -> BadPayload:
        return BadPayload(f"{self.event_type or 'notification'}: {what}")


def ovo(value: Any, where: str, msg: Msg) -> dict[str, Any]:
    """Unwrap an oslo versioned object (``{"nova_object.data": {...}}``);
    plain dicts pass through."""
    if not isinstance(value, Mapping):
        raise msg.bad(f"{where} is not a JSON object (got {type(value).__name__})")
    if "nova_object.data" in value:
        data = value["nova_object.data"]
        if not isinstance(data, Mapping):
            raise msg.bad(f"{where}.nova_object.data is not a JSON object")
        return dict(data)
    return dict(value)


def req_str(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> str:
    """A required, non-empty string id."""
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        state = "missing" if value in (None, "") else f"not a string ({type(value).__name__})"
        raise msg.bad(f"{where}.{key} is {state}")
    return value.strip()


def opt_str(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> str | None:
    """An optional string; ``""`` reads as absent. Numbers are accepted
    (legacy payloads send some ids as integers)."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise msg.bad(f"{where}.{key} must be a string, not {type(value).__name__}")
    return str(value)


MAX_SIZE = 2**31 - 1  # the inventory's size columns (cores, MiB, GiB)


def opt_int(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> int | None:
    """An optional size (0 to MAX_SIZE); numeric strings are accepted
    (Glance/legacy Nova send some sizes as strings)."""
    value = _opt_int(data, key, where, msg)
    if value is not None and not 0 <= value <= MAX_SIZE:
        shown = str(value) if len(str(value)) < 30 else f"a {len(str(value))}-digit number"
        raise msg.bad(f"{where}.{key} must be a size from 0 to {MAX_SIZE}, got {shown}")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise msg.bad(f"{where}.{key} must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise msg.bad(f"{where}.{key} must be an integer, got {value!r}")


def opt_dict(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise msg.bad(f"{where}.{key} must be a JSON object, not {type(value).__name__}")
    return dict(value)


def opt_list(data: Mapping[str, Any], key: str, where: str, msg: Msg) -> list[Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise msg.bad(f"{where}.{key} must be a JSON array, not {type(value).__name__}")
    return value


def ip_version(address: str, where: str, msg: Msg) -> int:
    """4 or 6; an unparseable address is a bad payload (it would poison the
    host's IP rows)."""
    try:
        return ipaddress.ip_address(address.strip()).version
    except ValueError:
        raise msg.bad(f"{where} is not an IP address: {address!r}") from None


def context_project(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(project id, project name) of the request context: wire v1 puts it in
    ``_context_*`` keys, the listener shape in ``ctxt``."""
    ctxt = message.get("ctxt")
    if isinstance(ctxt, Mapping):
        pid = ctxt.get("project_id") or ctxt.get("tenant_id") or ctxt.get("tenant")
        name = ctxt.get("project_name") or ctxt.get("tenant_name")
    else:
        pid = message.get("_context_project_id") or message.get("_context_tenant")
        name = message.get("_context_project_name") or message.get("_context_tenant_name")
    return (
        pid if isinstance(pid, str) and pid else None,
        name if isinstance(name, str) and name else None,
    )
