"""Turning a queued webhook body into inbox events and inventory changes.

The endpoint queued the raw body; here the worker records every message in
the inbox (deduplicated by the driver's key), translates it and applies the
changes. Each event is claimed with ``select_for_update(skip_locked=True)``
inside the transaction that applies it, so a duplicate delivery or a replay
racing with the original never applies twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from sync.apply import apply
from sync.choices import EventStatusChoices as Status
from sync.db_outage import is_transient, is_unavailable
from sync.drivers.base import (
    BadPayload,
    Driver,
    EventInfo,
    TemporaryError,
    Translation,
    body_hash,
)
from sync.drivers.registry import get_driver
from sync.jsonsafety import lossless_text, unstorable_reason
from sync.models import CloudProvider, Event

__all__ = ["IngestReport", "ingest_body", "process_events", "record_messages", "reopen", "replay", "request_replay"]

log = logging.getLogger(__name__)

OPEN_STATUSES = (Status.QUEUED, Status.FAILED, Status.DEAD)
DONE_STATUSES = (Status.PROCESSED, Status.IGNORED)


@dataclass
class IngestReport:
    """Outcome of one task run; ``retry`` lists events that hit a temporary error."""

    events: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    duplicates: int = 0
    retry: list[int] = field(default_factory=list)
    last_error: TemporaryError | None = None


def ingest_body(provider_id: int, body: Any, received_at: datetime | None = None) -> IngestReport:
    """Record and process every message of one webhook body (object or list).

    Idempotent, so a redelivered or re-run body is harmless. Database outages
    propagate (the task waits them out holding its message); nothing else
    does: a body that cannot be parsed or recorded message by message is
    recorded whole, as text, and failed with the reason.
    """
    provider = CloudProvider.objects.filter(pk=provider_id).first()
    if provider is None:
        log.warning("provider %s no longer exists; dropping a queued body", provider_id)
        return IngestReport()
    received_at = received_at or timezone.now()
    text = body if isinstance(body, str) else None
    try:
        if isinstance(body, str | bytes):
            text = body if isinstance(body, str) else body.decode("utf-8", "backslashreplace")
            body = json.loads(text)
        events = record_messages(provider, body, received_at, text=text)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # RecursionError, ValueError, a driver bug in split()
        log.exception("provider %s: a queued body could not be recorded message by message",
                      provider_id)
        events = [_record_unreadable(provider, text, body, received_at, exc)]
    report = process_events(provider, events)
    CloudProvider.objects.filter(pk=provider.pk).update(
        last_event_received_at=received_at, last_event_processed_at=timezone.now()
    )
    return report


def _driver_for(provider: CloudProvider) -> Driver | None:
    try:
        return get_driver(provider.cloud_sync_driver)
    except KeyError:
        return None


def _event_key(info_key: str) -> str:
    if len(info_key) <= 255:
        return info_key
    return "sha256:" + hashlib.sha256(info_key.encode()).hexdigest()


def record_messages(
    provider: CloudProvider, body: Any, received_at: datetime, *, text: str | None = None
) -> list[Event]:
    """Inbox rows for every message in the body; existing rows for duplicates.
    A message the database cannot store as JSON is recorded as text, failed."""
    driver = _driver_for(provider)
    messages = body if isinstance(body, list) else [body]
    events: list[Event] = []
    for message in messages:
        problem = unstorable_reason(message, settings.CLOUDSYNC_MAX_JSON_DEPTH)
        if problem:
            events.append(_record_unstorable(provider, message, text, received_at, problem))
            continue
        if driver is None:
            events.append(
                _record(provider, EventInfo(key=body_hash(message)), message, received_at,
                        error=f"driver {provider.cloud_sync_driver!r} is not installed")
            )
            continue
        try:
            parts = list(driver.split(message))
        except BadPayload as exc:
            events.append(
                _record(provider, EventInfo(key=body_hash(message)), message, received_at,
                        error=f"bad payload: {exc}")
            )
            continue
        except Exception as exc:  # a driver bug: this message fails alone
            log.exception("driver %s: split() crashed", driver.name)
            events.append(
                _record(provider, EventInfo(key=body_hash(message)), message, received_at,
                        error=f"driver error: {type(exc).__name__}: {exc}")
            )
            continue
        for part in parts:
            error = ""
            try:
                info = driver.describe(part)
            except BadPayload as exc:
                info, error = EventInfo(key=body_hash(part)), f"bad payload: {exc}"
            except Exception as exc:  # a driver bug: this message fails alone
                log.exception("driver %s: describe() crashed", driver.name)
                info = EventInfo(key=body_hash(part))
                error = f"driver error: {type(exc).__name__}: {exc}"
            events.append(_record(provider, info, part, received_at, error=error))
    return events


def _clean_text(value: str) -> str:
    """A string the database accepts in a text column (NULs, surrogates escaped)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _record(
    provider: CloudProvider, info: EventInfo, message: Any, received_at: datetime, *,
    error: str = "", fallback: bool = True,
) -> Event:
    defaults = {
        "event_type": _clean_text(info.event_type or "")[:255],
        "occurred_at": info.occurred_at,
        "received_at": received_at,
        "body": message,
        "status": Status.FAILED if error else Status.QUEUED,
        "error": error[:2000],
    }
    key = _event_key(_clean_text(info.key))
    try:
        with transaction.atomic():
            event, _ = Event.objects.get_or_create(cloudprovider=provider, key=key, defaults=defaults)
    except IntegrityError:  # a concurrent worker recorded the same message first
        event = Event.objects.filter(cloudprovider=provider, key=key).first()
        if event is None:  # not a duplicate after all: a value the database refused
            raise
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, ValueError) as exc:  # a value the database refuses (not the body)
        if not fallback:
            raise
        log.warning("event %s of provider %s could not be recorded as is: %s", key, provider.pk, exc)
        return _record(
            provider, EventInfo(key=body_hash(message)), _as_text_body(message, None), received_at,
            error=f"bad payload: the database refused it ({type(exc).__name__}: {exc})"[:2000],
            fallback=False,
        )
    return event


def _as_text_body(message: Any, body_text: str | None) -> dict:
    """A storable, lossless stand-in for a message: its JSON as ASCII text."""
    text = lossless_text(message)
    if text is not None:
        return {"unstorable_json": text}
    return {"unstorable_body": body_text}  # too deep to re-encode: keep the whole body


def _record_unstorable(
    provider: CloudProvider, message: Any, body_text: str | None, received_at: datetime, problem: str
) -> Event:
    stand_in = _as_text_body(message, body_text)
    key = "sha256:" + hashlib.sha256(json.dumps(stand_in, sort_keys=True).encode()).hexdigest()
    return _record(provider, EventInfo(key=key), stand_in, received_at,
                   error=f"bad payload: the message {problem}")


def _record_unreadable(
    provider: CloudProvider, text: str | None, body: Any, received_at: datetime, exc: Exception
) -> Event:
    """The whole body as text, failed: nothing accepted is ever dropped."""
    if text is None:
        text = lossless_text(body) or repr(body)
    if isinstance(exc, RecursionError):
        reason = "bad payload: the body is nested too deeply to read"
    elif isinstance(exc, ValueError):
        reason = f"bad payload: the body is not valid JSON ({exc})"
    else:
        reason = f"internal error reading the body: {type(exc).__name__}: {exc}"
    key = "sha256:" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()
    return _record(provider, EventInfo(key=key), {"unstorable_body": _clean_text(text)}, received_at,
                   error=reason)


def process_events(provider: CloudProvider, events: Iterable[Event]) -> IngestReport:
    """Translate and apply every open event; never raises for one bad event."""
    report = IngestReport()
    driver = _driver_for(provider)
    seen: set[int] = set()
    todo: list[Event] = []
    for event in events:
        if event.pk in seen:  # the same message twice in one body
            report.duplicates += 1
            continue
        seen.add(event.pk)
        report.events += 1
        if event.status in DONE_STATUSES:
            report.duplicates += 1
        elif driver is None or (
            event.status == Status.FAILED and event.error.startswith("bad payload")
        ):
            report.failed += 1
        else:
            todo.append(event)
    if not todo:
        return report
    try:
        translated = _translate_together(provider, driver, todo)
    except TemporaryError as exc:  # the cloud is unwell: retry the body, not N more calls
        report.retry = [e.pk for e in todo]
        report.last_error = exc
        _note_attempt(report.retry, exc)
        return report
    for event in todo:
        try:
            outcome = process_event(provider, driver, event, translated.get(event.pk))
        except (OperationalError, InterfaceError) as exc:
            if is_unavailable(exc):  # the task waits the outage out and runs the body again
                raise
            if not is_transient(exc):
                log.exception("event %s could not be applied", event.pk)
                outcome = _finish(event, Status.FAILED,
                                  error=f"apply error: {type(exc).__name__}: {exc}")
            else:  # deadlock, serialization failure: fine on the next try
                _note_attempt([event.pk], exc)
                report.retry.append(event.pk)
                report.last_error = TemporaryError(f"database: {exc}")
                continue
        except TemporaryError as exc:  # the cloud may be fine on the next try
            _note_attempt([event.pk], exc)
            report.retry.append(event.pk)
            report.last_error = exc
            continue
        except (DatabaseError, ValueError) as exc:  # a value the database refuses
            log.exception("event %s could not be applied", event.pk)
            outcome = _finish(event, Status.FAILED, error=f"apply error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must fail its event, never the body
            log.exception("event %s: internal error", event.pk)
            outcome = _finish(event, Status.FAILED,
                              error=f"internal error: {type(exc).__name__}: {exc}")
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _note_attempt(event_ids: list[int], exc: Exception) -> None:
    """Why the events wait for a retry, and since when (the sweeper reads it)."""
    Event.objects.filter(pk__in=event_ids, status__in=OPEN_STATUSES).update(
        error=f"{type(exc).__name__}: {exc}"[:2000], attempted_at=timezone.now()
    )


def _translate_together(
    provider: CloudProvider, driver: Driver, events: list[Event]
) -> dict[int, Translation | BadPayload]:
    """Translate a body's events in one driver call, so drivers that re-fetch
    from the cloud (AWS) make one API call for all of them. On any failure
    each event is translated on its own instead, which isolates the culprit;
    a temporary error (throttling, auth, network) is raised for the body."""
    if len(events) < 2:
        return {}
    try:
        results = driver.translate_batch([e.body for e in events], provider.client_config)
    except TemporaryError:
        raise
    except Exception:  # a driver bug: per-event handling isolates the culprit
        log.exception("driver %s: translate_batch failed; translating one by one", driver.name)
        return {}
    if len(results) != len(events):
        return {}
    return {event.pk: result for event, result in zip(events, results, strict=True)}


def process_event(
    provider: CloudProvider,
    driver: Driver,
    event: Event,
    translation: Translation | BadPayload | None = None,
) -> str:
    """One event: translate (outside the transaction: drivers may call the
    cloud) unless already done, then claim + apply + mark in one transaction."""
    try:
        if translation is None:
            translation = driver.translate(event.body, provider.client_config)
        elif isinstance(translation, BadPayload):
            raise translation
    except TemporaryError:
        raise
    except BadPayload as exc:
        return _finish(event, Status.FAILED, error=f"bad payload: {exc}")
    except Exception as exc:  # a driver bug must not poison the queue
        log.exception("driver %s crashed on event %s", driver.name, event.pk)
        return _finish(event, Status.FAILED, error=f"driver error: {type(exc).__name__}: {exc}")
    with transaction.atomic():
        claimed = (
            Event.objects.select_for_update(skip_locked=True)
            .filter(pk=event.pk, status__in=OPEN_STATUSES)
            .first()
        )
        if claimed is None:
            return "duplicates"
        if translation.ignored is not None:
            claimed.status, claimed.result = Status.IGNORED, {"ignored": translation.ignored}
        elif translation.snapshot is not None:
            claimed.status, claimed.result = Status.PROCESSED, _reconcile_pushed(
                provider, translation.snapshot, event
            )
        else:
            result = apply(provider, translation.changes, keep_outcomes=False)
            claimed.status, claimed.result = Status.PROCESSED, result.as_dict()
        claimed.error = ""
        claimed.processed_at = timezone.now()
        claimed.attempts += 1
        claimed.save(update_fields=["status", "result", "error", "processed_at", "attempts"])
    return "ignored" if claimed.status == Status.IGNORED else "processed"


def _reconcile_pushed(provider: CloudProvider, snapshot: Any, event: Event) -> dict:
    """A pushed complete inventory: a SyncRun of kind snapshot, same safety rules."""
    from sync.choices import SyncRunKindChoices
    from sync.reconcile import reconcile
    from sync.runs import RunInProgress, claim_run

    try:
        run = claim_run(provider, SyncRunKindChoices.SNAPSHOT, triggered_by=f"event {event.key}"[:100])
    except RunInProgress as exc:  # try again once the running sync is done
        raise TemporaryError(str(exc)) from exc
    reconcile(run, snapshot)
    return {"sync_run": run.pk, "status": run.status, "drift_healed": run.drift_healed}


def _finish(event: Event, status: str, *, error: str) -> str:
    Event.objects.filter(pk=event.pk, status__in=OPEN_STATUSES).update(
        status=status, error=error[:2000], processed_at=timezone.now()
    )
    return "failed"


def mark_retry_exhausted(event_ids: list[int]) -> None:
    """After the last retry: dead-letter, replayable by an operator."""
    Event.objects.filter(pk__in=event_ids, status__in=OPEN_STATUSES).update(status=Status.DEAD)


def count_attempt(event_ids: list[int]) -> None:
    from django.db.models import F

    Event.objects.filter(pk__in=event_ids).update(attempts=F("attempts") + 1)


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
            .values_list("pk", "attempts")[:limit]
        )
        dead = [pk for pk, attempts in rows if attempts >= settings.CLOUDSYNC_RETRY_MAX]
        again = [pk for pk, attempts in rows if attempts < settings.CLOUDSYNC_RETRY_MAX]
        Event.objects.filter(pk__in=dead).update(
            status=Status.DEAD, processed_at=now,
            error=Concat(F("error"), Value(" (dead: still queued after the last retry)")),
        )
        Event.objects.filter(pk__in=again).update(attempted_at=now, attempts=F("attempts") + 1)
    return again, dead


def reopen(event_ids: Iterable[int]) -> list[int]:
    """Put failed/dead events back in the queue state; returns the ids reopened."""
    ids = list(
        Event.objects.filter(pk__in=list(event_ids), status__in=(Status.FAILED, Status.DEAD))
        .values_list("pk", flat=True)
    )
    Event.objects.filter(pk__in=ids).update(status=Status.QUEUED, error="")
    return ids


def replay(event_ids: Iterable[int]) -> IngestReport:
    """Process queued events again (after ``reopen``), grouped by provider."""
    report = IngestReport()
    events = Event.objects.filter(pk__in=list(event_ids)).select_related("cloudprovider")
    by_provider: dict[int, list[Event]] = {}
    for event in events.order_by("pk"):
        by_provider.setdefault(event.cloudprovider_id, []).append(event)
    for evs in by_provider.values():
        part = process_events(evs[0].cloudprovider, evs)
        for name in ("events", "processed", "ignored", "failed", "duplicates"):
            setattr(report, name, getattr(report, name) + getattr(part, name))
        report.retry += part.retry
        report.last_error = part.last_error or report.last_error
    return report


def request_replay(event_ids: Iterable[int]) -> list[int]:
    """Operator action: reopen failed/dead events and queue them again."""
    from sync.tasks import replay_events

    events = Event.objects.filter(pk__in=list(event_ids), status__in=(Status.FAILED, Status.DEAD))
    before = dict(events.values_list("pk", "status"))
    ids = reopen(before)
    if ids:
        try:
            replay_events.apply_async(kwargs={"event_ids": ids}, retry=False)
        except Exception:  # broker down: put them back as they were, nothing lost
            for pk, status in before.items():
                Event.objects.filter(pk=pk, status=Status.QUEUED).update(status=status)
            raise
    return ids
