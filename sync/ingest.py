"""Turning queued webhook bodies into inbox events and inventory changes, in batches.

The worker hands over many queued bodies at once (``ingest_bodies``). Per
provider, every message is recorded in the inbox with one INSERT
(``sync.inbox``), the open events are translated together (drivers that
re-fetch from the cloud make one call for all of them), and their changes are
applied by ``apply()`` — the same bulk core full syncs use — in one
transaction that also claims the events (``select_for_update(skip_locked)``,
so a duplicate delivery or a concurrent replay never applies twice) and marks
their outcomes in bulk.

Isolation: a batch the database refuses is split in halves until the
culprit is alone and failed with its reason. Temporary errors (the cloud's
auth, throttling, network; a deadlock) leave the events queued and retry
them by id, with backoff, from the inbox; the attempt count lives on the
event. Database outages propagate: the task waits them out holding its
messages (``sync.db_outage``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from sync import inbox, metrics, names, queueing, rollups
from sync.apply import Cause, apply, bulk, floors
from sync.choices import EventStatusChoices as Status
from sync.choices import HistoryCauseChoices as HistoryCause
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.db_outage import is_transient, is_unavailable, is_vanished_reference
from sync.drivers.base import BadPayload, Driver, DriverNotInstalled, TemporaryError, Translation
from sync.drivers.registry import get_driver
from sync.errors import RunInProgress
from sync.inbox import OPEN_STATUSES
from sync.models import CloudProvider, Event, SyncRun
from sync.retries import retry_countdown
from sync.runs import run_snapshot

__all__ = [
    "Body",
    "IngestReport",
    "ingest_bodies",
    "ingest_body",
    "process_events",
    "record_failed_body",
    "replay",
    "request_replay",
]

log = logging.getLogger(__name__)

DONE_STATUSES = (Status.PROCESSED, Status.IGNORED)


@dataclass(slots=True)
class Body:
    """One queued webhook body, as the endpoint queued it."""

    provider_id: int
    body: Any
    received_at: datetime | str | None = None


@dataclass
class IngestReport:
    """Outcome of ingesting or replaying; ``retry`` lists events waiting for a retry."""

    events: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    duplicates: int = 0
    retry: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    # (event type, outcome) -> events, for the metrics (``sync.metrics``)
    outcomes: Counter = field(default_factory=Counter)
    # seconds from received to final, of the events processed or ignored
    lags: list[float] = field(default_factory=list)
    # the part of ``outcomes`` read, not written (duplicates, events the inbox
    # recorded failed): a batch that raises does not count it, as its rerun will
    unwritten: Counter = field(default_factory=Counter)

    def merge(self, other: IngestReport) -> None:
        for name in ("events", "processed", "ignored", "failed", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry += other.retry
        self.dead += other.dead
        self.outcomes.update(other.outcomes)
        self.lags += other.lags
        self.unwritten.update(other.unwritten)

    def count(self, event: Event, outcome: str, n: int = 1, *, written: bool = True) -> None:
        """Count ``event``'s outcome; ``written``: this batch wrote it (after
        its transaction committed), not merely read it."""
        self.outcomes[(event.event_type, outcome)] += n
        if not written:
            self.unwritten[(event.event_type, outcome)] += n


def _when(value: datetime | str | None) -> datetime:
    if isinstance(value, datetime):
        return value
    if value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return timezone.now()


def _driver_for(provider: CloudProvider) -> Driver | None:
    """The provider's driver; None if this worker does not have it (its
    events are recorded failed, replayable once it is installed)."""
    try:
        return get_driver(provider.cloud_sync_driver)
    except DriverNotInstalled:
        return None


def ingest_bodies(bodies: Sequence[Body]) -> IngestReport:
    """Record and process every message of many queued bodies.

    Idempotent: a redelivered or re-run batch records nothing twice and
    applies nothing twice. Only database outages raise.
    """
    report = IngestReport()
    by_provider: dict[int, list[Body]] = defaultdict(list)
    for item in bodies:
        by_provider[item.provider_id].append(item)
    providers = CloudProvider.objects.in_bulk(list(by_provider))
    for provider_id, items in by_provider.items():
        provider = providers.get(provider_id)
        if provider is None:
            log.warning("provider %s no longer exists; dropping %d queued %s",
                        provider_id, len(items), "body" if len(items) == 1 else "bodies")
            continue
        driver = _driver_for(provider)
        incoming: list[inbox.Incoming] = []
        received = []
        for item in items:
            when = _when(item.received_at)
            received.append(when)
            incoming += inbox.read_body(provider, driver, item.body, when)
        events = inbox.record(provider, incoming)
        report.merge(process_events(provider, events, driver=driver))
        CloudProvider.objects.filter(pk=provider.pk).update(
            last_event_received_at=max(received), last_event_processed_at=timezone.now()
        )
    return report


def record_failed_body(item: Body, exc: BaseException) -> None:
    """Last resort for a body that broke ingestion: recorded whole, failed,
    with the reason (nothing accepted is dropped)."""
    provider = CloudProvider.objects.filter(pk=item.provider_id).first()
    if provider is None:
        log.warning("provider %s no longer exists; dropping a queued body", item.provider_id)
        return
    new: set[int] = set()
    events = inbox.record(provider, [inbox.unreadable(item.body, _when(item.received_at), exc)],
                          inserted=new)
    metrics.count_events(  # a body delivered again is recorded once, counted once
        provider.pk, provider.cloud_sync_driver,
        Counter((event.event_type, "failed" if event.pk in new else "duplicate")
                for event in events))


def ingest_body(provider_id: int, body: Any, received_at: datetime | None = None) -> IngestReport:
    """One queued body (object or list of messages); see ``ingest_bodies``."""
    return ingest_bodies([Body(provider_id, body, received_at)])


def process_events(
    provider: CloudProvider, events: Iterable[Event], *, driver: Driver | None = None
) -> IngestReport:
    """Translate and apply every open event; never raises for a bad event.
    The batch's outcomes and lags are counted once, at the end (``sync.metrics``),
    even when it raises (a database outage): what committed before is counted
    then (outcomes enter the report after their transaction committed; the
    batch's rerun finds those events final and counts them duplicates), what
    was only read is left to the rerun."""
    report = IngestReport()
    completed = False
    try:
        _process_events(provider, events, driver, report)
        completed = True
    finally:
        outcomes = report.outcomes if completed else report.outcomes - report.unwritten
        metrics.count_events(provider.pk, provider.cloud_sync_driver, outcomes)
        if report.lags:
            metrics.observe_lags(provider.pk, provider.cloud_sync_driver, report.lags)
    return report


def _process_events(
    provider: CloudProvider, events: Iterable[Event], driver: Driver | None,
    report: IngestReport,
) -> IngestReport:
    driver = driver or _driver_for(provider)
    seen: set[int] = set()
    todo: list[Event] = []
    for event in events:
        if event.pk in seen:  # the same message twice in one batch
            report.duplicates += 1
            report.count(event, "duplicate", written=False)
            continue
        seen.add(event.pk)
        report.events += 1
        if event.status in DONE_STATUSES:
            report.duplicates += 1
            report.count(event, "duplicate", written=False)
        elif driver is None or (
            event.status == Status.FAILED and event.error.startswith(("bad payload", "driver error"))
        ):
            report.failed += 1
            # failed by an earlier batch (processed_at set): final already
            report.count(event, "duplicate" if event.processed_at else "failed", written=False)
        else:
            todo.append(event)
    if not todo or driver is None:
        return report
    ready: list[tuple[Event, Translation]] = []
    failed: dict[int, str] = {}
    by_id = {event.pk: event for event in todo}
    retry: list[Event] = []
    waiting: list[Event] = []  # snapshots held back by the provider's running sync
    last_error: Exception | None = None
    for event, outcome in _translate(provider, driver, todo):
        if isinstance(outcome, TemporaryError):
            retry.append(event)
            last_error = outcome
        elif isinstance(outcome, BadPayload):
            failed[event.pk] = f"bad payload: {outcome}"
        elif isinstance(outcome, Exception):
            log.error("driver %s crashed on event %s: %r", driver.name, event.pk, outcome)
            failed[event.pk] = f"driver error: {type(outcome).__name__}: {outcome}"
        elif outcome.snapshot is not None:
            _process_snapshot(provider, event, outcome, report, retry, waiting)
        else:
            ready.append((event, outcome))
    if failed:
        report.failed += _finish_failed(failed, report, by_id)
    _apply_isolating(provider, ready, report, retry, waiting)
    if retry:
        _schedule_retry(retry, last_error, report)
    if waiting:
        _wait_for_run(waiting, report)
    return report


def _translate(
    provider: CloudProvider, driver: Driver, events: list[Event]
) -> list[tuple[Event, Translation | Exception]]:
    """Translate events together (one driver call, so AWS re-fetches all
    instances of a batch at once); when that fails, one by one, which
    isolates the culprit. A temporary error of the batch call is every
    event's (the cloud is unwell: retry them, not N more calls)."""
    config = provider.client_config
    if len(events) >= 2:
        try:
            results = driver.translate_batch([e.body for e in events], config)
        except TemporaryError as exc:
            return [(event, exc) for event in events]
        except Exception:  # a driver bug: per-event handling isolates the culprit
            log.exception("driver %s: translate_batch failed; translating one by one", driver.name)
            results = None
        if results is not None and len(results) == len(events):
            return list(zip(events, results, strict=True))
    out: list[tuple[Event, Translation | Exception]] = []
    for event in events:
        try:
            out.append((event, driver.translate(event.body, config)))
        except Exception as exc:
            out.append((event, exc))
    return out


def _apply_isolating(
    provider: CloudProvider, items: list[tuple[Event, Translation]], report: IngestReport,
    retry: list[Event], waiting: list[Event],
) -> None:
    """Apply ``items`` in one transaction; if the database refuses it, halve
    until the culprit is alone, and fail only that one."""
    if not items:
        return
    try:
        waiting += _apply_claimed(provider, items, report)
        return
    except (OperationalError, InterfaceError) as exc:
        if is_unavailable(exc):
            raise
        if is_transient(exc):  # deadlock, serialization failure: retry by id
            retry.extend(event for event, _ in items)
            return
        failure: Exception = exc
    except IntegrityError as exc:
        if is_vanished_reference(exc):
            # References are resolved without a lock (sync.apply.references):
            # the retention purge may delete a tombstone this batch just
            # resolved, and the deferred FK check fails at commit. Retried by
            # id, the events resolve again (a placeholder replaces the row).
            # Cheaper than share-locking every reference, and a real FK bug
            # still ends dead after CLOUDSYNC_RETRY_MAX retries.
            retry.extend(event for event, _ in items)
            return
        failure = exc
    except Exception as exc:  # a value the database refuses, an apply bug
        failure = exc
    if len(items) == 1:
        event = items[0][0]
        log.warning("event %s could not be applied: %s", event.pk, failure)
        report.failed += _finish_failed(
            {event.pk: f"apply error: {type(failure).__name__}: {failure}"}, report,
            {event.pk: event},
        )
        return
    middle = len(items) // 2
    _apply_isolating(provider, items[:middle], report, retry, waiting)
    _apply_isolating(provider, items[middle:], report, retry, waiting)


def _apply_claimed(
    provider: CloudProvider, items: list[tuple[Event, Translation]], report: IngestReport
) -> list[Event]:
    """Claim, apply and mark ``items`` in one transaction (a few statements
    for the whole batch). Returns the events that must wait for the
    provider's running listing (``sync.apply.floors``), left open."""
    now = timezone.now()
    with transaction.atomic():
        listed, pending = floors.read(provider)
        held = {event.pk for event, t in items if pending and any(map(pending.below, t.changes))}
        if held and not SyncRun.objects.filter(pk=pending.run, status=RunStatus.RUNNING).exists():
            held = set()  # that listing ended without completing: nothing to wait for
        claimed = set(
            Event.objects.select_for_update(skip_locked=True)
            .filter(pk__any=[event.pk for event, _ in items if event.pk not in held],
                    status__in=OPEN_STATUSES)
            .values_list("pk", flat=True)
        )
        mine = [(event, t) for event, t in items if event.pk in claimed]
        owner = {id(change): event.pk for event, t in mine for change in t.changes}
        changes = [change for _, t in mine for change in t.changes]
        per_event: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        if changes:
            causes = {event.pk: Cause(HistoryCause.EVENT, event.pk, event.event_type,
                                      event.occurred_at) for event, _ in mine}
            result = apply(provider, changes, now=now, floors=listed,
                           cause=lambda change: causes[owner[id(change)]])
            for change, outcome in result.outcomes:
                per_event[owner[id(change)]][change.kind.value][outcome] += 1
        rows = []
        for event, t in mine:
            if t.ignored is not None:
                event.status, event.result = Status.IGNORED, {"ignored": t.ignored}
            else:
                counts = per_event.get(event.pk, {})
                event.status = Status.PROCESSED
                event.result = {kind: dict(c) for kind, c in sorted(counts.items())}
                if t.note:
                    event.result["note"] = t.note
            event.error, event.processed_at, event.attempts = "", now, event.attempts + 1
            rows.append(event)
        bulk.bulk_update(Event, rows, ["status", "result", "error", "processed_at", "attempts"])
        tally = rollups.Tally()
        for event in rows:
            tally.add(provider.pk, str(event.status), now, event.received_at)
        rollups.write(tally)  # last: the batches of other processes wait on it only briefly
    for event in rows:
        if event.status == Status.IGNORED:
            report.ignored += 1
            report.count(event, "ignored")
        else:
            report.processed += 1
            report.count(event, "processed")
        report.lags.append(_lag(event, now))
    report.duplicates += len(items) - len(rows) - len(held)
    for event, _ in items:
        if event.pk not in claimed and event.pk not in held:
            report.count(event, "duplicate", written=False)
    return [event for event, _ in items if event.pk in held]


def _lag(event: Event, now: datetime) -> float:
    received = event.received_at
    return max((now - received).total_seconds(), 0.0) if isinstance(received, datetime) else 0.0


def _process_snapshot(
    provider: CloudProvider, event: Event, translation: Translation, report: IngestReport,
    retry: list[Event], waiting: list[Event],
) -> None:
    """A pushed complete inventory: a SyncRun of kind snapshot, same safety
    rules as a full sync, in the event's own transaction. While another run
    of the provider holds its lock, the event waits (``waiting``)."""
    try:
        with transaction.atomic():
            claimed = (
                Event.objects.select_for_update(skip_locked=True)
                .filter(pk=event.pk, status__in=OPEN_STATUSES).first()
            )
            if claimed is None:
                report.duplicates += 1
                report.count(event, "duplicate", written=False)
                return
            run = run_snapshot(provider, translation.snapshot,
                               triggered_by=f"event {event.key}"[:100])
            claimed.status = Status.PROCESSED
            claimed.result = {"sync_run": run.pk, "status": run.status,
                              "drift_healed": run.drift_healed}
            claimed.error, claimed.processed_at = "", timezone.now()
            claimed.attempts += 1
            claimed.save(update_fields=["status", "result", "error", "processed_at", "attempts"])
            tally = rollups.Tally()
            tally.add(provider.pk, "processed", claimed.processed_at, claimed.received_at)
            rollups.write(tally)
    except RunInProgress:  # try again once the running sync is done
        waiting.append(event)
        return
    except (OperationalError, InterfaceError) as exc:
        if is_unavailable(exc):
            raise
        if is_transient(exc):
            retry.append(event)
            return
        report.failed += _finish_failed({event.pk: f"apply error: {type(exc).__name__}: {exc}"},
                                        report, {event.pk: event})
        return
    except Exception as exc:
        log.exception("event %s: pushed snapshot failed", event.pk)
        report.failed += _finish_failed({event.pk: f"apply error: {type(exc).__name__}: {exc}"},
                                        report, {event.pk: event})
        return
    report.processed += 1
    report.count(event, "processed")
    report.lags.append(_lag(event, claimed.processed_at))


def _finish_failed(errors: dict[int, str], report: IngestReport, events: dict[int, Event]) -> int:
    """Mark events failed (each with its reason) if still open; returns how
    many (counted in ``report.outcomes`` by type)."""
    now = timezone.now()
    with transaction.atomic():
        open_ids = dict(
            Event.objects.select_for_update(skip_locked=True)
            .filter(pk__any=list(errors), status__in=OPEN_STATUSES)
            .values_list("pk", "cloudprovider_id")
        )
        rows = [Event(pk=pk, status=Status.FAILED, error=errors[pk][:2000], processed_at=now)
                for pk in open_ids]
        bulk.bulk_update(Event, rows, ["status", "error", "processed_at"])
        tally = rollups.Tally()
        for provider_id in open_ids.values():
            tally.add(provider_id, "failed", now)
        rollups.write(tally)
    for pk in open_ids:
        report.count(events[pk], "failed")
    return len(rows)


def _schedule_retry(events: list[Event], error: Exception | None, report: IngestReport) -> None:
    """Count an attempt on each event (the only attempt counter); past
    CLOUDSYNC_RETRY_MAX retries they are dead (replayable), the others are
    queued again by id after the backoff. If that message is lost, the
    sweeper finds them queued and queues them again."""
    ids = [event.pk for event in events]
    text = f"{type(error).__name__}: {error}"[:2000] if error else "temporary error"
    now = timezone.now()
    Event.objects.filter(pk__in=ids, status__in=OPEN_STATUSES).update(
        attempts=F("attempts") + 1, attempted_at=now, error=text, status=Status.QUEUED
    )
    attempts = dict(Event.objects.filter(pk__in=ids, status=Status.QUEUED)
                    .values_list("pk", "attempts"))
    dead = [pk for pk, n in attempts.items() if n > settings.CLOUDSYNC_RETRY_MAX]
    again = [pk for pk, n in attempts.items() if n <= settings.CLOUDSYNC_RETRY_MAX]
    if dead:
        with transaction.atomic():
            died = list(Event.objects.select_for_update().filter(pk__in=dead, status=Status.QUEUED)
                        .order_by("pk").values_list("pk", "cloudprovider_id"))
            Event.objects.filter(pk__in=[pk for pk, _ in died]).update(
                status=Status.DEAD, processed_at=now
            )
            tally = rollups.Tally()
            for _, provider_id in died:
                tally.add(provider_id, "dead", now)
            rollups.write(tally)
        log.error("events %s dead after %d retries: %s", dead, settings.CLOUDSYNC_RETRY_MAX, text)
    if again:
        countdown = retry_countdown(max(attempts[pk] for pk in again) - 1)
        try:
            queueing.send_task(names.REPLAY, countdown=countdown, event_ids=again)
        except Exception as exc:  # the sweeper will find them queued
            log.warning("retry of events %s not queued (%s); the sweeper will pick them up",
                        again, exc)
    report.retry += again
    report.dead += dead
    by_id = {event.pk: event for event in events}
    for pk in again:
        report.count(by_id[pk], "retry")
    for pk in dead:
        report.count(by_id[pk], "dead")


def _wait_for_run(events: list[Event], report: IngestReport) -> None:
    """Snapshots that arrived while a sync of their provider runs, and events
    older than the running listing's floor (``sync.apply.floors``): tried
    again every CLOUDSYNC_RETRY_CAP_SECONDS for as long as the run lasts,
    without using up their retry budget (a full sync may take hours)."""
    ids = [event.pk for event in events]
    Event.objects.filter(pk__in=ids, status__in=OPEN_STATUSES).update(
        attempted_at=timezone.now(), status=Status.QUEUED,
        error="waiting for the provider's running sync to finish",
    )
    try:
        queueing.send_task(names.REPLAY, countdown=settings.CLOUDSYNC_RETRY_CAP_SECONDS,
                           event_ids=ids)
    except Exception as exc:  # the sweeper will find them queued
        log.warning("retry of events %s not queued (%s); the sweeper will pick them up", ids, exc)
    report.retry += ids
    for event in events:
        report.count(event, "retry")


def replay(event_ids: Iterable[int]) -> IngestReport:
    """Process events by id (after ``inbox.reopen``, retries, the sweeper)."""
    report = IngestReport()
    wanted = list(dict.fromkeys(event_ids))
    events = list(Event.objects.filter(pk__in=wanted).select_related("cloudprovider").order_by("pk"))
    missing = sorted(set(wanted) - {event.pk for event in events})
    if missing:
        log.warning("events %s no longer exist (purged, or their provider was deleted); "
                    "dropping them from the replay", missing)
    by_provider: dict[int, list[Event]] = {}
    for event in events:
        by_provider.setdefault(event.cloudprovider_id, []).append(event)
    for evs in by_provider.values():
        report.merge(process_events(evs[0].cloudprovider, evs))
    return report


def request_replay(event_ids: Iterable[int]) -> list[int]:
    """Operator action: reopen failed/dead events and queue them again."""
    events = Event.objects.filter(pk__in=list(event_ids), status__in=(Status.FAILED, Status.DEAD))
    before = {pk: (status, error) for pk, status, error in events.values_list("pk", "status", "error")}
    ids = inbox.reopen(before)
    if ids:
        try:
            queueing.send_task(names.REPLAY, event_ids=ids)
        except Exception:  # broker down: put them back as they were, nothing lost
            for pk in ids:
                status, error = before[pk]
                Event.objects.filter(pk=pk, status=Status.QUEUED).update(status=status, error=error)
            raise
    return ids
