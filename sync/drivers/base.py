"""The driver interface: what a cloud integration implements.

A driver knows one cloud's wire formats and SDK and nothing of the database:
it turns an event message into ``Change`` objects (``translate``) and lists a
cloud's whole inventory (``list_inventory``). The core (``sync.apply``,
``sync.reconcile``, ``sync.tasks``) does everything else.

Errors are classified so the worker knows what to do:

* ``AuthError`` / ``NetworkError``: temporary, retried with backoff;
* ``BadPayload``: permanent, the event is marked failed with the reason;
* ``ConfigError``: the provider's ``client_config`` is invalid (field errors).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sync.changes import Change, Kind

__all__ = [
    "AuthError",
    "BadPayload",
    "ConfigError",
    "Driver",
    "DriverError",
    "DriverNotInstalled",
    "EventInfo",
    "NetworkError",
    "Snapshot",
    "TemporaryError",
    "Translation",
    "body_hash",
    "exception_chain",
    "root_cause",
    "root_cause_text",
    "unreachable_message",
]


class DriverError(Exception):
    """Base class of every error a driver raises on purpose."""


class DriverNotInstalled(LookupError):
    """No driver is registered under this name in this process."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"driver {name!r} is not installed")


class TemporaryError(DriverError):
    """Worth retrying later (with backoff)."""


class AuthError(TemporaryError):
    """The cloud refused our credentials (may be a rotation in progress)."""


class NetworkError(TemporaryError):
    """Connection refused/reset, timeout, 5xx, throttling."""


class BadPayload(DriverError):
    """The message cannot be understood; retrying will not help."""


class ConfigError(DriverError):
    """The provider's client_config is invalid; ``errors`` maps key -> message."""

    def __init__(self, errors: Mapping[str, str] | str):
        if isinstance(errors, str):
            errors = {"client_config": errors}
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What the inbox records about one message before translating it."""

    key: str  # dedup key: oslo message_id, EventBridge id, else a body hash
    event_type: str = ""
    occurred_at: datetime | None = None


@dataclass(slots=True)
class Snapshot:
    """A complete listing of a cloud's inventory, as upsert Changes.

    ``kinds`` names the kinds that were listed completely: reconcile deletes
    only objects of a listed kind inside a listed scope. ``scopes`` narrows a
    kind to some projects (external project ids); ``None`` means the whole
    provider. A driver that cannot list something completely raises instead
    of returning a partial snapshot. ``changes`` may be a generator so that
    large clouds stream through reconcile without being held in memory.
    """

    changes: Iterable[Change]
    kinds: frozenset[Kind]
    scopes: Mapping[Kind, frozenset[str]] | None = None
    started_at: datetime | None = None
    # Kinds whose objects carry no update time of their own, listed
    # completely and whole-provider: the version the listing stamps on them
    # (its start). The run records it instead of rewriting unchanged rows
    # (sync.apply.floors).
    floors: Mapping[Kind, str] | None = None


@dataclass(slots=True)
class Translation:
    """The outcome of translating one message.

    ``ignored`` holds a reason when the message is valid but irrelevant to the
    inventory (aggregates, keypairs, ``.start`` events that carry nothing new);
    the inbox then records the event as ignored rather than processed.
    """

    changes: list[Change] = field(default_factory=list)
    ignored: str | None = None
    # What the message could not carry although its changes were applied
    # (e.g. a Ceilometer event without ``raw``): kept in the event's result
    # as ``"note"``, so the operator sees why a field was not updated.
    note: str | None = None
    # A producer-pushed complete inventory (generic driver): reconciled like
    # a full sync, deletion safety included, instead of applied as changes.
    snapshot: Snapshot | None = None


def body_hash(message: Any) -> str:
    """A stable dedup key for messages that carry no id of their own."""
    raw = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


# -- root causes of connection errors ----------------------------------------
# An SDK connection error is a chain (keystoneauth ConnectFailure -> requests
# ConnectionError -> urllib3 MaxRetryError -> NewConnectionError -> OSError)
# whose str() repeats every layer. Operators need the address and the last
# link ("connection refused"), so drivers build their messages from these.

_URL_RE = re.compile(r"\b(https?)://([^/\s'\"()<>]+)")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\]\s*(.+)$")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first, each once.

    Follows ``__cause__``/``__context__``, and the wrapped exception that
    requests (``args[0]``) and urllib3 (``.reason``) keep as plain attributes.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        links = (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            current.args[0] if current.args else None,
        )
        pending.extend(link for link in links if isinstance(link, BaseException))


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s chain (e.g. ``ConnectionRefusedError``)."""
    *_, last = exception_chain(exc)
    return last


def root_cause_text(exc: BaseException) -> str:
    """The root cause as an operator reads it: ``connection refused``,
    ``name or service not known``, ``timed out``."""
    cause = root_cause(exc)
    text = getattr(cause, "strerror", None) if isinstance(cause, OSError) else None
    text = str(text or cause).strip() or type(cause).__name__
    match = _ERRNO_RE.search(text)
    if match:
        text = match.group(1)
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _origin(exc: BaseException) -> str | None:
    """``scheme://host:port`` of the address a connection error was about."""
    for err in exception_chain(exc):
        url = getattr(getattr(err, "request", None), "url", None)
        if isinstance(url, str):
            match = _URL_RE.search(url)
            if match:
                return f"{match.group(1)}://{match.group(2).rsplit('@', 1)[-1]}"
        pool = getattr(err, "pool", None)
        if getattr(pool, "host", None) and getattr(pool, "scheme", None):
            port = f":{pool.port}" if getattr(pool, "port", None) else ""
            return f"{pool.scheme}://{pool.host}{port}"
    for err in exception_chain(exc):
        match = _URL_RE.search(str(err))
        if match:
            return f"{match.group(1)}://{match.group(2).rsplit('@', 1)[-1]}"
    return None


def unreachable_message(exc: BaseException) -> str:
    """``cannot reach https://keystone.example:5000: connection refused``:
    one line, the address and the root cause, whatever the SDK wrapped it in."""
    where = _origin(exc) or "the cloud"
    return f"cannot reach {where}: {root_cause_text(exc)}"


class Driver:
    """Base class of every driver. Subclasses set ``name`` and override
    ``translate``; full-sync capable drivers also override ``list_inventory``.

    Drivers are instantiated once per process and must be stateless.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    supports_full_sync: ClassVar[bool] = False
    supports_catch_up: ClassVar[bool] = False

    # -- configuration -----------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the normalized client_config or raise ``ConfigError``."""
        if not isinstance(config, Mapping):
            raise ConfigError("must be a JSON object")
        return dict(config)

    # -- events ------------------------------------------------------------
    def split(self, message: Any) -> Iterator[Any]:
        """Unwrap transport envelopes into individual messages (default: as is)."""
        yield message

    def describe(self, message: Any) -> EventInfo:
        """Dedup key and event type of one message."""
        if isinstance(message, Mapping):
            for key in ("message_id", "id", "MessageId"):
                value = message.get(key)
                if isinstance(value, str) and value:
                    return EventInfo(
                        key=value,
                        event_type=str(
                            message.get("event_type") or message.get("detail-type") or ""
                        ),
                    )
        return EventInfo(key=body_hash(message))

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        """Turn one message into Changes. Raise ``BadPayload`` for garbage,
        ``AuthError``/``NetworkError`` if a cloud call needed for it failed."""
        raise NotImplementedError

    def translate_batch(
        self, messages: Sequence[Any], config: Mapping[str, Any]
    ) -> list[Translation | BadPayload | TemporaryError]:
        """Translate a batch of messages together: one slot per message, the
        ``BadPayload`` (or ``TemporaryError``) of a message in its own slot,
        so only that message fails (or is retried). Drivers that call the
        cloud per message (AWS re-fetches) override it to coalesce those
        calls; a temporary error of such a shared call raises for the batch."""
        out: list[Translation | BadPayload | TemporaryError] = []
        for message in messages:
            try:
                out.append(self.translate(message, config))
            except (BadPayload, TemporaryError) as exc:
                out.append(exc)
        return out

    # -- full sync ---------------------------------------------------------
    def list_inventory(self, config: Mapping[str, Any], part: str | None = None) -> Snapshot:
        """List everything, completely, or raise. With ``part`` (one of
        ``list_parts``), list only that part: its snapshot's ``kinds`` are
        the kinds that part lists completely."""
        raise NotImplementedError(f"driver {self.name!r} has no full sync")

    def list_parts(self, config: Mapping[str, Any]) -> list[str]:
        """The parts a full sync can be split into, each listed by its own
        task (``list_inventory(config, part)``); together they list every
        kind ``list_inventory(config)`` does, each kind in one part. Empty
        (the default): the driver cannot split."""
        return []

    def list_changes_since(self, config: Mapping[str, Any], since: datetime) -> Snapshot:
        """Changes since ``since`` (deletes included), for the hourly catch-up."""
        raise NotImplementedError(f"driver {self.name!r} has no catch-up")

    def test_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Authenticate and list one page of each kind; return what was seen."""
        raise NotImplementedError(f"driver {self.name!r} cannot test a connection")
