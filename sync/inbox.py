"""The inbox: recording received messages (deduplicated), and its upkeep.

Every message of every queued body becomes exactly one ``Event`` row, keyed
per provider by the driver's dedup key. Recording is split in two: reading a
body into ``Incoming`` messages (no database: parse, split, describe, and the
checks for what the database cannot store) and writing a whole batch of them
with one INSERT (conflicts on the key do nothing) plus one SELECT. A message
the database cannot store as it is is recorded as its exact JSON text and
failed with the reason; a body that cannot even be read is recorded whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from sync import rollups
from sync.apply import bulk
from sync.choices import EventStatusChoices as Status
from sync.drivers.base import BadPayload, Driver, EventInfo, body_hash
from sync.jsonsafety import lossless_text, parse, unstorable_reason
from sync.models import CloudProvider, Event

__all__ = [
    "Incoming",
    "unreadable",
    "OPEN_STATUSES",
    "claim_stuck_events",
    "read_body",
    "record",
    "reopen",
]

log = logging.getLogger(__name__)

OPEN_STATUSES = (Status.QUEUED, Status.FAILED, Status.DEAD)


@dataclass(slots=True)
class Incoming:
    """One message about to be recorded."""

    key: str
    event_type: str
    occurred_at: datetime | None
    received_at: datetime
    body: Any
    error: str = ""

    def as_event(self, provider: CloudProvider) -> Event:
        return Event(
            cloudprovider=provider, key=self.key, event_type=self.event_type,
            occurred_at=self.occurred_at, received_at=self.received_at, body=self.body,
            status=Status.FAILED if self.error else Status.QUEUED, error=self.error[:2000],
        )


def _clean_text(value: str) -> str:
    """A string the database accepts in a text column (NULs, surrogates escaped)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _key(info_key: str) -> str:
    key = _clean_text(info_key)
    if len(key) <= 255:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _incoming(info: EventInfo, message: Any, received_at: datetime, error: str = "") -> Incoming:
    return Incoming(_key(info.key), _clean_text(info.event_type or "")[:255], info.occurred_at,
                    received_at, message, error)


def _stand_in(message: Any, body_text: str | None) -> dict:
    """A storable, lossless stand-in for a message: its JSON as ASCII text."""
    text = lossless_text(message)
    if text is not None:
        return {"unstorable_json": text}
    return {"unstorable_body": body_text}  # too deep to re-encode: keep the whole body


def _unstorable(
    message: Any, body_text: str | None, index: int, received_at: datetime, problem: str
) -> Incoming:
    stand_in = _stand_in(message, body_text)
    # Keyed by the stand-in, exact for NULs and surrogates (so a duplicate in
    # another body is the same event); infinities have lost their digits
    # (1e400 and 2e400 both read as inf), so those are keyed by the text received.
    lossy = "out of range" in problem and body_text is not None
    source = f"{index}#{body_text}" if lossy else json.dumps(stand_in, sort_keys=True)
    key = "sha256:" + hashlib.sha256(source.encode("utf-8", "backslashreplace")).hexdigest()
    return _incoming(EventInfo(key=key), stand_in, received_at,
                     f"bad payload: the message {problem}")


def unreadable(body: Any, received_at: datetime, exc: BaseException) -> Incoming:
    """The whole body as text, failed: nothing accepted is ever dropped."""
    if isinstance(body, bytes):
        text = body.decode("utf-8", "backslashreplace")
    elif isinstance(body, str):
        text = body
    else:
        text = lossless_text(body) or repr(body)
    if isinstance(exc, RecursionError):
        reason = "bad payload: the body is nested too deeply to read"
    elif isinstance(exc, ValueError):
        reason = f"bad payload: the body is not valid JSON ({exc})"
    else:
        reason = f"internal error reading the body: {type(exc).__name__}: {exc}"
    key = "sha256:" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
    return _incoming(EventInfo(key=key), {"unstorable_body": _clean_text(text)}, received_at,
                     reason)


def read_body(
    provider: CloudProvider, driver: Driver | None, body: Any, received_at: datetime
) -> list[Incoming]:
    """Every message of one queued body (text or parsed), ready to record.
    Never raises: what cannot be read becomes a failed message."""
    text = body if isinstance(body, str) else None
    check = True
    try:
        if isinstance(body, str | bytes):
            text = body if isinstance(body, str) else body.decode("utf-8", "backslashreplace")
            body, check = parse(text, settings.CLOUDSYNC_MAX_JSON_DEPTH)
        messages = body if isinstance(body, list) else [body]
        return [item for index, message in enumerate(messages)
                for item in _read_message(provider, driver, message, index, received_at, text,
                                          check)]
    except Exception as exc:  # RecursionError, ValueError, anything unforeseen
        log.exception("provider %s: a queued body could not be read message by message",
                      provider.pk)
        return [unreadable(text if text is not None else body, received_at, exc)]


def _read_message(
    provider: CloudProvider, driver: Driver | None, message: Any, index: int,
    received_at: datetime, text: str | None, check: bool = True,
) -> list[Incoming]:
    problem = check and unstorable_reason(message, settings.CLOUDSYNC_MAX_JSON_DEPTH)
    if problem:
        return [_unstorable(message, text, index, received_at, problem)]
    if driver is None:
        return [_incoming(EventInfo(key=body_hash(message)), message, received_at,
                          f"driver {provider.cloud_sync_driver!r} is not installed")]
    try:
        parts = list(driver.split(message))
    except BadPayload as exc:
        return [_incoming(EventInfo(key=body_hash(message)), message, received_at,
                          f"bad payload: {exc}")]
    except Exception as exc:  # a driver bug: this message fails alone
        log.exception("driver %s: split() crashed", driver.name)
        return [_incoming(EventInfo(key=body_hash(message)), message, received_at,
                          f"driver error: {type(exc).__name__}: {exc}")]
    out = []
    for part in parts:
        try:
            out.append(_incoming(driver.describe(part), part, received_at))
        except BadPayload as exc:
            out.append(_incoming(EventInfo(key=body_hash(part)), part, received_at,
                                 f"bad payload: {exc}"))
        except Exception as exc:  # a driver bug: this message fails alone
            log.exception("driver %s: describe() crashed", driver.name)
            out.append(_incoming(EventInfo(key=body_hash(part)), part, received_at,
                                 f"driver error: {type(exc).__name__}: {exc}"))
    return out


def record(provider: CloudProvider, incoming: list[Incoming], *,
           inserted: set[int] | None = None) -> list[Event]:
    """Inbox rows for the messages, in order (the existing row for a
    duplicate): one INSERT that skips known keys, one SELECT. If the batch
    insert is refused (a value the database will not take), each message is
    recorded on its own so only the culprit is affected. ``inserted``, if
    given, receives the ids of the rows this call created."""
    if not incoming:
        return []
    first: dict[str, Incoming] = {}
    for item in incoming:
        first.setdefault(item.key, item)
    # Sorted: two workers inserting overlapping keys wait in one order, never a cycle.
    new = {key: first[key].as_event(provider) for key in sorted(first)}
    rows: dict[str, Event] = {}
    try:
        with transaction.atomic():
            before = None if _returns_rows() else _known_keys(provider, list(new))
            inserted_rows = bulk.insert_ignoring_conflicts(Event, list(new.values()),
                                                           returning=("id", "key"))
            added = ([key for _, key in inserted_rows] if inserted_rows is not None
                     else [key for key in new if key not in before])
            _count_recorded(provider, [new[key] for key in added])
        for pk, key in inserted_rows or ():  # what was inserted is what we hold: no read back
            event = new[key]
            event.pk, event._state.adding, event._state.db = pk, False, Event.objects.db
            rows[key] = event
        created = set(added)
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, ValueError) as exc:
        log.warning("provider %s: batch insert refused (%s); recording one by one", provider.pk, exc)
        created = {item.key for item in first.values() if _record_one(provider, item)}
    known = [key for key in first if key not in rows]  # duplicates: the stored row wins
    if known:
        rows.update((e.key, e) for e in Event.objects.filter(cloudprovider=provider, key__any=known))
    if inserted is not None:
        inserted.update(rows[key].pk for key in created if key in rows)
    return [rows[item.key] for item in incoming]


def _returns_rows() -> bool:
    """Whether ``bulk.insert_ignoring_conflicts`` says which rows it inserted."""
    return connections[Event.objects.db].vendor == "postgresql"


def _known_keys(provider: CloudProvider, keys: list[str]) -> set[str]:
    return set(Event.objects.filter(cloudprovider=provider, key__any=keys)
               .values_list("key", flat=True))


def _count_recorded(provider: CloudProvider, events: list[Event]) -> None:
    """The status rollups of newly recorded events (received; failed for
    those recorded failed), in the recording transaction."""
    tally = rollups.Tally()
    now = timezone.now()
    for event in events:
        tally.add(provider.pk, "received", event.received_at)
        if event.status == Status.FAILED:
            tally.add(provider.pk, "failed", now)
    rollups.write(tally)


def _record_one(provider: CloudProvider, item: Incoming, *, fallback: bool = True) -> bool:
    """Record one message; True if a row was created."""
    try:
        with transaction.atomic():
            event = item.as_event(provider)
            known = _known_keys(provider, [event.key])
            bulk.insert_ignoring_conflicts(Event, [event])
            if not known:
                _count_recorded(provider, [event])
        return not known
    except (OperationalError, InterfaceError):
        raise
    except (IntegrityError, DatabaseError, ValueError) as exc:
        if not fallback:
            raise
        log.warning("event %s of provider %s could not be recorded as is: %s",
                    item.key, provider.pk, exc)
        stand_in = _incoming(EventInfo(key=item.key), _stand_in(item.body, None), item.received_at,
                             f"bad payload: the database refused it ({type(exc).__name__}: {exc})")
        return _record_one(provider, stand_in, fallback=False)


def claim_stuck_events(limit: int = 10_000) -> tuple[list[int], list[int]]:
    """Events left "queued" CLOUDSYNC_STUCK_EVENT_SECONDS after their last
    attempt (or their recording): leased to the sweeper for another period
    (``attempted_at`` = now, one attempt counted) in one locked update, so
    two sweeps never queue the same event. Those past the retry limit go to
    the dead letter instead. Returns (ids to queue again, ids dead)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CLOUDSYNC_STUCK_EVENT_SECONDS)
    with transaction.atomic():
        rows = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(status=Status.QUEUED)
            .filter(Q(attempted_at__lt=cutoff) | Q(attempted_at__isnull=True, created_at__lt=cutoff))
            .order_by("pk")
            .values_list("pk", "attempts", "cloudprovider_id")[:limit]
        )
        dead = [pk for pk, attempts, _ in rows if attempts >= settings.CLOUDSYNC_RETRY_MAX]
        again = [pk for pk, attempts, _ in rows if attempts < settings.CLOUDSYNC_RETRY_MAX]
        Event.objects.filter(pk__in=dead).update(
            status=Status.DEAD, processed_at=now,
            error=Concat(F("error"), Value(" (dead: still queued after the last retry)")),
        )
        tally = rollups.Tally()
        for _, attempts, provider_id in rows:
            if attempts >= settings.CLOUDSYNC_RETRY_MAX:
                tally.add(provider_id, "dead", now)
        rollups.write(tally)
        Event.objects.filter(pk__in=again).update(attempted_at=now, attempts=F("attempts") + 1)
    return again, dead


def reopen(event_ids: Iterable[int]) -> list[int]:
    """Put failed/dead events back in the queue state, with one conditional
    UPDATE (an event processed or reopened meanwhile is left alone); returns
    the ids reopened."""
    ids = [int(pk) for pk in event_ids]
    if not ids:
        return []
    connection = connections[Event.objects.db]
    qn = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(Event._meta.db_table)} SET {qn('status')} = %s, {qn('error')} = '' "
            f"WHERE {qn('id')} IN ({marks}) AND {qn('status')} IN (%s, %s) RETURNING {qn('id')}",
            [Status.QUEUED, *ids, Status.FAILED, Status.DEAD],
        )
        return sorted(row[0] for row in cursor.fetchall())
