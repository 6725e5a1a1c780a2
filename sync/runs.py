"""Sync runs, the only owner of their lifecycle: whether a run may start
(``check_can_start``, the one rule for API, admin, command and beat),
claiming the per-provider lock, executing, recording the outcome, and
applying stored plans. Full syncs, catch-ups, dry runs and pushed snapshots
all end in ``sync.apply.apply`` through ``sync.reconcile``, which returns
what it did; only this module saves ``SyncRun`` state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sync import coverage, metrics, names, queueing, split
from sync.apply.floors import NO_FLOORS, Floors, lock_for_change
from sync.apply.history import Cause
from sync.changes import Source
from sync.choices import HistoryCauseChoices as HistoryCause
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import (
    AuthError,
    Driver,
    DriverError,
    DriverNotInstalled,
    NetworkError,
    Snapshot,
    TemporaryError,
)
from sync.drivers.registry import get_driver
from sync.errors import PlanNotApplicable, QueueUnavailable, RunInProgress, RunRefused
from sync.models import CloudProvider, SyncRun
from sync.progress import Progress, merged
from sync.reconcile import Reconciliation, apply_plan, listing_floors, reconcile

__all__ = [
    "check_can_start",
    "execute_run_once",
    "reconcile_run",
    "run_snapshot",
    "abandoned_runs",
    "release_for_retry",
    "apply_stored_plan",
    "claim_run",
    "execute_part",
    "PartBusy",
    "execute_run",
    "release_part",
    "fail_part",
    "fail_run",
    "fail_split",
    "finish_split",
    "request_plan_apply",
    "fail_run_by_id",
    "release_runs",
    "start_all",
    "start_run",
]

log = logging.getLogger(__name__)


def claim_run(provider: CloudProvider, kind: str, *, triggered_by: str = "") -> SyncRun:
    """Create the run row in status running; the partial unique index is the lock.

    A run still "running" long after any task could (its worker died, its
    message was lost) is failed first, so a lost run never locks a provider
    for good.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 600)
    SyncRun.objects.filter(
        cloudprovider=provider, status=RunStatus.RUNNING, started_at__lt=stale
    ).filter(Q(heartbeat_at__isnull=True) | _executor_gone(now)).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error="abandoned: still running after the task time limit (worker lost?)",
    )
    try:
        with transaction.atomic():
            return SyncRun.objects.create(
                cloudprovider=provider, kind=kind, status=RunStatus.RUNNING,
                triggered_by=triggered_by[:100],
            )
    except IntegrityError:
        running = SyncRun.objects.filter(cloudprovider=provider, status=RunStatus.RUNNING).first()
        raise RunInProgress(
            f"a sync of {provider} is already running"
            + (f" (run #{running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S} UTC)" if running else "")
        ) from None


def check_can_start(provider: CloudProvider, kind: str) -> Driver:
    """Whether an operator or beat may start a ``kind`` run of ``provider``:
    the one rule for the API, the admin, ``cloudsync_sync`` and beat. Raises
    ``RunRefused`` (recording nothing) with the reason; returns the driver."""
    if kind == RunKind.SNAPSHOT:
        raise RunRefused("snapshot runs start when a snapshot is pushed to the provider's endpoint")
    if not provider.cloud_sync_enabled:
        raise RunRefused(f"cloud sync is disabled for provider {provider}")
    try:
        driver = get_driver(provider.cloud_sync_driver)
    except DriverNotInstalled as exc:
        raise RunRefused(str(exc)) from None
    if kind == RunKind.CATCH_UP and not driver.supports_catch_up:
        raise RunRefused(f"driver {driver.name!r} does not support catch-up")
    if kind in (RunKind.FULL, RunKind.DRY_RUN) and not driver.supports_full_sync:
        raise RunRefused(f"driver {driver.name!r} does not support full sync")
    return driver


def start_run(provider: CloudProvider, kind: str = RunKind.FULL, *, triggered_by: str = "") -> SyncRun:
    """Check, claim the provider's lock and queue the run on ``cloudsync.sync``."""
    check_can_start(provider, kind)
    run = claim_run(provider, kind, triggered_by=triggered_by)
    try:
        queueing.send_task(names.RUN_SYNC, run_id=run.pk)
    except Exception as exc:  # broker down: release the lock, say why
        fail_run(run, f"could not queue the run: {exc}")
        raise QueueUnavailable(f"could not queue the sync run: {exc}") from exc
    return run


def _since(provider: CloudProvider) -> datetime | None:
    last = (
        SyncRun.objects.filter(
            cloudprovider=provider,
            kind__in=(RunKind.FULL, RunKind.CATCH_UP),
            status__in=(RunStatus.SUCCEEDED, RunStatus.NEEDS_APPROVAL),
        )
        .order_by("-started_at")
        .first()
    )
    return last.started_at if last else None


def execute_run(run_id: int) -> SyncRun:
    """Run a claimed SyncRun: list, reconcile, apply (or store the plan).

    Temporary errors (auth, network) propagate so the task can retry with
    backoff; the run stays claimed meanwhile. Other errors fail the run.
    Only one worker executes a run at a time: the one that took it (see
    ``_take``) and keeps its heartbeat fresh.
    """
    return execute_run_once(run_id)[0]


def execute_run_once(run_id: int, *, may_split: bool = False) -> tuple[SyncRun, bool]:
    """``execute_run``, and whether this call executed the run (False for a
    duplicate message: the run was finished, or a live worker has it).

    ``may_split`` (the ``run_sync`` task): a full sync that ``split.parts_for``
    splits is handed to a chord of part tasks and returned still running
    (``_start_split``); without it (``cloudsync_sync``, tests) a run is
    always executed here, in one piece."""
    run = SyncRun.objects.select_related("cloudprovider").filter(pk=run_id).first()
    if run is None:  # queued from inside a transaction that has not committed yet
        raise TemporaryError(f"sync run #{run_id} is not visible yet")
    if run.status != RunStatus.RUNNING:
        return run, False
    worker = _take(run)
    if worker is None:  # a redelivered message: a live worker is executing the run
        log.info("sync run #%s is being executed by %s; nothing to do", run.pk, run.worker)
        return run, False
    progress = Progress(run.progress)  # a retry or takeover: never below the last attempt's
    with _heartbeat(run.pk, worker, progress=progress):
        return _execute(run, may_split=may_split, progress=progress), True


def _execute(run: SyncRun, *, may_split: bool = False, progress: Progress | None = None) -> SyncRun:
    provider = run.cloudprovider
    try:
        driver = get_driver(provider.cloud_sync_driver)
    except DriverNotInstalled as exc:
        fail_run(run, f"{exc} on this worker")
        run.refresh_from_db()
        return run
    config = provider.client_config
    try:
        if run.kind == RunKind.CATCH_UP:
            since = _since(provider)
            if since is None:  # never synced: a catch-up would miss everything
                snapshot = driver.list_inventory(config)
            else:
                snapshot = driver.list_changes_since(config, since)
                snapshot.kinds = frozenset()
        else:
            parts = split.parts_for(run, driver, config) if may_split else []
            if parts:
                _start_split(run, parts)
                run.refresh_from_db()
                return run
            snapshot = driver.list_inventory(config)
        if snapshot.started_at is None:
            snapshot.started_at = run.started_at
        reconcile_run(run, snapshot, dry_run=run.kind == RunKind.DRY_RUN, progress=progress)
    except OperationalError as exc:  # deadlock, lost connection: retry the run
        try:
            SyncRun.objects.filter(pk=run.pk).update(error=f"database error: {exc}"[:5000])
        except DatabaseError:  # the database is gone: the sweeper takes the run over later
            pass
        raise NetworkError(f"database error: {exc}") from exc
    except TemporaryError as exc:
        SyncRun.objects.filter(pk=run.pk).update(error=_describe(exc))
        raise
    except DriverError as exc:
        fail_run(run, _describe(exc))
    except Exception as exc:
        log.exception("sync run %s crashed", run.pk)
        fail_run(run, f"internal error: {type(exc).__name__}: {exc}")
    run.refresh_from_db()
    return run


def run_cause(run: SyncRun) -> Cause:
    """What the objects' history names as the cause of a run's changes."""
    kind = {RunKind.CATCH_UP: HistoryCause.CATCH_UP,
            RunKind.SNAPSHOT: HistoryCause.SNAPSHOT}.get(run.kind, HistoryCause.FULL)
    return Cause(kind, run_id=run.pk, actor=run.triggered_by if kind == HistoryCause.SNAPSHOT else "")


def reconcile_run(run: SyncRun, snapshot: Snapshot, *, dry_run: bool = False,
                  progress: Progress | None = None) -> SyncRun:
    """Reconcile the provider with ``snapshot`` as ``run`` and record the
    outcome; ``progress`` follows the listing (its final state is recorded
    with the outcome)."""
    progress = progress if progress is not None else Progress()
    source = Source.CATCH_UP if run.kind == RunKind.CATCH_UP else Source.FULL_SYNC
    floors = listing_floors(snapshot, snapshot.started_at or run.started_at)
    if dry_run or not floors:
        floors = NO_FLOORS
    else:  # events older than this listing wait for it (sync.apply.floors)
        _set_floors(run, pending=Floors(floors.started_at, floors.versions, run.pk))
    result = reconcile(run.cloudprovider, snapshot, source=source, ref=str(run.pk),
                       started_at=run.started_at, dry_run=dry_run, cause=run_cause(run),
                       progress=progress)
    progress.set_phase("done")
    _finish_listing(run, result, floors, progress=progress.as_json())
    return run


def _finish_listing(run: SyncRun, result: Reconciliation, floors: Floors,
                    parts: dict[str, Any] | None = None, *,
                    progress: dict[str, Any] | None = None) -> None:
    """Record the run's outcome and, if its listing completed, its floor as
    the provider's listed one, in one transaction: an ingest batch sees
    either the run still running with its pending floor, or both done."""
    with transaction.atomic():
        if floors and result.status in (RunStatus.SUCCEEDED, RunStatus.NEEDS_APPROVAL):
            _set_floors(run, listed=floors.completed(result.unseen))
        _finish(run, result, parts, progress)


def _set_floors(run: SyncRun, *, pending: Floors | None = None,
                listed: Floors | None = None) -> None:
    """Record a running listing's floor (``pending``; the parts of a split
    run add theirs to it), or the floor of one that completed (``listed``,
    which also ends the pending one)."""
    with transaction.atomic():  # (parts of a split run announce concurrently)
        lock_for_change(run.cloudprovider_id)
        provider = CloudProvider.objects.get(pk=run.cloudprovider_id)
        floors = dict(provider.listing_floors or {})
        if pending is not None:
            mine = Floors.from_json(floors.get("pending"))
            if mine.run == run.pk and mine.started_at is not None and pending.started_at:
                pending = Floors(min(mine.started_at, pending.started_at),
                                 {**mine.versions, **pending.versions}, run.pk)
            floors["pending"] = pending.as_json()
        if listed is not None:
            floors["listed"] = listed.as_json()
            floors.pop("pending", None)
        CloudProvider.objects.filter(pk=provider.pk).update(listing_floors=floors)
    run.cloudprovider.listing_floors = floors


def run_snapshot(provider: CloudProvider, snapshot: Snapshot, *, triggered_by: str) -> SyncRun:
    """A pushed complete inventory: a run of kind snapshot (same lock, same
    deletion safety as a full sync), executed here, in the caller's
    transaction. Raises ``RunInProgress`` while another run holds the lock."""
    run = claim_run(provider, RunKind.SNAPSHOT, triggered_by=triggered_by)
    return reconcile_run(run, snapshot)


def _finish(run: SyncRun, result: Reconciliation, parts: dict[str, Any] | None = None,
            progress: dict[str, Any] | None = None) -> None:
    now = timezone.now()
    if progress is None:  # a split run: what its parts wrote
        stored = SyncRun.objects.filter(pk=run.pk).values_list("progress", flat=True).first()
        progress = merged(stored, {}, phase="done")
    run.status, run.finished_at, run.error = result.status, now, result.error
    run.counts, run.drift_healed, run.drift = result.counts, result.drift_healed, result.drift
    run.plan, run.parts, run.progress = result.plan, parts or {}, progress
    fields = ["status", "finished_at", "error", "counts", "drift_healed", "drift", "plan", "parts",
              "progress"]
    if run.kind == RunKind.FULL and result.status in coverage.COMPLETE:
        measured = coverage.measure(run)  # the status page reads it from the run
        if measured is not None:
            run.coverage_since, run.events_applied = measured
            fields += ["coverage_since", "events_applied"]
    run.save(update_fields=fields)
    _count_run_on_commit(run.pk)
    if run.kind == RunKind.FULL:  # ids a split attempt of this run listed (taken over since)
        split.clear(run.pk)
    if run.kind != RunKind.DRY_RUN:
        CloudProvider.objects.filter(pk=run.cloudprovider_id).update(
            last_full_sync_at=now, last_full_sync_status=result.status
        )


SPLIT = "split:"  # SyncRun.worker of a run whose parts execute it: "split:<chord id>"


def _executor_gone(now: datetime) -> Q:
    """The run's executor stopped renewing the heartbeat: one task after
    ``CLOUDSYNC_RUN_STALE_SECONDS``; a split run (its parts beat while they
    run, but may wait in the queue behind other work, and the broker
    redelivers a part whose worker died) after the task time limit."""
    stale = now - timedelta(seconds=settings.CLOUDSYNC_RUN_STALE_SECONDS)
    split_stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    return (Q(heartbeat_at__lt=stale) & ~Q(worker__startswith=SPLIT)) | Q(heartbeat_at__lt=split_stale)


# -- split full syncs ---------------------------------------------------------
# The run's executor hands the run to a chord: one task per part
# (``execute_part``), then ``finish_split`` once all of them completed. The
# run's ``worker`` becomes the chord's token: parts and the finish act only
# while the run is running with that token, so a run taken over (a new
# chord) or failed ignores the old chord's tasks.


def _start_split(run: SyncRun, parts: list[str]) -> None:
    token = f"{SPLIT}{uuid.uuid4().hex}"
    owned = SyncRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, worker=_executor_id()) \
        .update(worker=token, heartbeat_at=timezone.now(), parts={})
    if not owned:
        return
    split.clear(run.pk)  # what an earlier chord of this run (taken over) listed
    try:
        queueing.send_chord(
            [(names.SYNC_PART, {"run_id": run.pk, "part": part, "token": token}) for part in parts],
            (names.FINISH_SPLIT, {"run_id": run.pk, "token": token}),
            on_error=(names.SPLIT_FAILED, {"run_id": run.pk, "token": token}),
        )
    except Exception as exc:  # broker down: nothing listed yet
        fail_run(run, f"could not queue the parts of the split run: {exc}")
        return
    log.info("sync run #%s split into %s", run.pk, ", ".join(parts))


def _owned(run_id: int, token: str) -> SyncRun | None:
    return (SyncRun.objects.select_related("cloudprovider")
            .filter(pk=run_id, status=RunStatus.RUNNING, worker=token).first())


# Each part holds a lease in the run row's ``parts`` ({part: {"worker", "beat"}},
# then {part: {"done": outcome}}): the broker hands a task's message out again
# once it has run longer than the visibility timeout, and that copy must not
# list the part a second time, nor report to the chord before the part is
# done (the chord keeps the first outcome reported for a task id). The copy
# asks again later (``PartBusy``): it returns the outcome once done, or takes
# the part over if the lease's executor stopped renewing it (its worker died).
_BUSY, _GONE = "busy", "gone"


def _lease(run_id: int, token: str, change: Callable[[dict[str, Any]], object]) -> object:
    """Read-modify-write the run's ``parts`` under the run row's lock (SQLite:
    an immediate transaction), if the run is still ``token``'s; ``change``
    edits the dict in place and returns the answer. ``_GONE`` otherwise."""
    with transaction.atomic():
        row = (SyncRun.objects.select_for_update()
               .filter(pk=run_id, status=RunStatus.RUNNING, worker=token)
               .values_list("parts", flat=True).first())
        if row is None and not SyncRun.objects.filter(
                pk=run_id, status=RunStatus.RUNNING, worker=token).exists():
            return _GONE
        parts = dict(row or {})
        answer = change(parts)
        SyncRun.objects.filter(pk=run_id).update(parts=parts, heartbeat_at=timezone.now())
    return answer


def _claim_part(run_id: int, part: str, token: str, me: str) -> object:
    """``me`` (this call lists the part), a done part's outcome, ``_BUSY``
    (a live executor lists it) or ``_GONE`` (the run is not this chord's)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CLOUDSYNC_RUN_STALE_SECONDS)

    def claim(parts: dict[str, Any]) -> object:
        lease = parts.get(part) or {}
        if "done" in lease:
            return lease["done"]
        beat = parse_datetime(lease["beat"]) if lease.get("beat") else None
        if lease.get("worker") not in (None, me) and beat is not None and beat > stale:
            return _BUSY
        parts[part] = {"worker": me, "beat": now.isoformat()}
        return me

    return _lease(run_id, token, claim)


def _renew_part(run_id: int, part: str, token: str, me: str) -> bool:
    """Renew the part's lease and the run's heartbeat; False once the run is
    no longer this chord's or another executor took the part over."""

    def renew(parts: dict[str, Any]) -> bool:
        lease = parts.get(part) or {}
        if lease.get("worker") != me:
            return False
        lease["beat"] = timezone.now().isoformat()
        return True

    return _lease(run_id, token, renew) is True


def release_part(run_id: int, part: str, token: str) -> None:
    """The task retries the part later: free its lease for the retry."""
    me = _executor_id()
    _lease(run_id, token, lambda parts: parts.pop(part, None)
           if (parts.get(part) or {}).get("worker") == me else None)
    _count_retry(run_id)


def _list_part(run_id: int, part: str, token: str, me: str) -> dict[str, Any]:
    run = SyncRun.objects.select_related("cloudprovider").get(pk=run_id)
    try:
        driver = get_driver(run.cloudprovider.cloud_sync_driver)
    except DriverNotInstalled as exc:
        return _part_failed(run_id, part, token, f"{exc} on this worker")
    alive = partial(_renew_part, run_id, part, token, me)
    progress = Progress()
    try:
        with _heartbeat(run_id, token, renew=alive, progress=progress, merge=True):
            outcome = split.list_part(
                run, driver, part, alive,
                lambda floors: _set_floors(run, pending=Floors(
                    floors.started_at, floors.versions, run.pk)), progress=progress)
        _write_progress(run_id, token, progress, merge=True)  # the part's last word
        return outcome
    except OperationalError as exc:
        raise NetworkError(f"database error: {exc}") from exc
    except (TemporaryError, split.Superseded):
        raise
    except DriverError as exc:
        return _part_failed(run_id, part, token, _describe(exc))
    except Exception as exc:
        log.exception("sync run %s, part %s crashed", run_id, part)
        return _part_failed(run_id, part, token, f"internal error: {type(exc).__name__}: {exc}")


class PartBusy(Exception):
    """A live copy of this part task lists the part: try again later."""


def execute_part(run_id: int, part: str, token: str) -> dict[str, Any]:
    """List and apply one part of a split run (a part task's body). Returns
    the part's outcome for ``finish_split``; a part that fails fails the run
    at once (the other parts stop at their next chunk) and returns its error.
    Temporary errors (auth, network, database) propagate: the task retries
    the part, then calls ``fail_part``. ``PartBusy``: a live copy of this
    task (the broker handed its message out again) lists the part; the task
    asks again later, without holding a worker process meanwhile."""
    try:
        return _execute_part(run_id, part, token)
    except OperationalError as exc:  # the database went away: retried like a network error
        raise NetworkError(f"database error: {exc}") from exc


def _execute_part(run_id: int, part: str, token: str) -> dict[str, Any]:
    me = _executor_id()
    while True:
        claim = _claim_part(run_id, part, token, me)
        if claim == _BUSY:
            raise PartBusy(f"part {part} of sync run #{run_id} is being listed by another copy")
        if claim == _GONE:
            return {"part": part, "skipped": "the run ended or was taken over"}
        if isinstance(claim, dict):  # a copy of this task listed it already
            return claim
        try:
            outcome = _list_part(run_id, part, token, me)
        except split.Superseded:  # the run ended, or another copy took the part over
            continue
        if outcome.get("error") is None:
            break
        return outcome
    _lease(run_id, token, lambda parts: parts.__setitem__(part, {"done": outcome}))
    return outcome


def fail_part(run_id: int, part: str, token: str, exc: Exception) -> dict[str, Any]:
    """A part's last retry failed: the run fails with why."""
    return _part_failed(run_id, part, token, _describe(exc))


def _part_failed(run_id: int, part: str, token: str, error: str) -> dict[str, Any]:
    error = f"part {part} failed: {error}"
    fail_split(run_id, token, error)
    return {"part": part, "error": error}


def fail_split(run_id: int, token: str, error: str) -> bool:
    """Fail a split run still owned by ``token`` (a part failed, or the chord
    did: a part task lost to the time limit). Deletes nothing. False if the
    run was no longer this chord's."""
    run = _owned(run_id, token)
    if run is None:
        return False
    now = timezone.now()
    failed = SyncRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, worker=token).update(
        status=RunStatus.FAILED, error=error[:5000], finished_at=now, parts={})
    split.clear(run_id)
    if failed:
        CloudProvider.objects.filter(pk=run.cloudprovider_id).update(
            last_full_sync_at=now, last_full_sync_status=RunStatus.FAILED)
        _count_run_on_commit(run_id)
    return bool(failed)


def finish_split(run_id: int, token: str, parts: list[dict[str, Any]]) -> SyncRun | None:
    """Every part of a split run completed (the chord's body): if one failed,
    the run fails with that part's error and nothing is deleted; otherwise
    deletions are decided once (``split.settle``) and the run recorded.
    None if the run no longer exists. A database error is temporary
    (``NetworkError``): the task retries."""
    try:
        return _finish_split(run_id, token, parts)
    except OperationalError as exc:
        raise NetworkError(f"database error: {exc}") from exc


def _finish_split(run_id: int, token: str, parts: list[dict[str, Any]]) -> SyncRun | None:
    run = _owned(run_id, token)
    if run is None:  # failed by a part, taken over, or released meanwhile
        return SyncRun.objects.filter(pk=run_id).first()
    failed = [p for p in parts if p.get("error") or p.get("skipped")]
    if failed:
        first = failed[0]
        fail_split(run_id, token, first.get("error") or f"part {first['part']}: {first['skipped']}")
    else:
        try:
            with _heartbeat(run_id, token):
                result, floors = split.settle(run, parts)
        except OperationalError:
            raise
        except split.ListedIdsLost as exc:
            fail_split(run_id, token, str(exc))
        except Exception as exc:
            log.exception("sync run %s: finishing the split run crashed", run_id)
            fail_split(run_id, token, f"internal error: {type(exc).__name__}: {exc}")
        else:
            if _owned(run_id, token) is not None:
                _finish_listing(run, result, floors, split.summary(parts))
                log.info("sync run #%s: parts %s", run_id, run.parts)
            split.clear(run_id)
    run.refresh_from_db()
    return run


def _executor_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:200]


def _take(run: SyncRun) -> str | None:
    """Become the run's executor, with one conditional UPDATE: the run is free
    (never started, released for a retry) or its executor's heartbeat is stale
    (the worker died). Returns this executor's id, or None."""
    now = timezone.now()
    worker = _executor_id()
    taken = (
        SyncRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
        .filter(Q(worker="") | Q(heartbeat_at__isnull=True) | _executor_gone(now))
        .update(heartbeat_at=now, worker=worker[:200])
    )
    if not taken:
        run.refresh_from_db(fields=["worker", "heartbeat_at"])
        return None
    if run.worker:
        log.warning("sync run #%s: taking over from %s (heartbeat stale)", run.pk, run.worker)
    return worker


@contextmanager
def _heartbeat(run_id: int, worker: str, renew: Callable[[], object] | None = None, *,
               progress: Progress | None = None, merge: bool = False) -> Iterator[None]:
    """Renew the run's heartbeat from a thread while the run executes
    (``renew``: how, if not the run's ``heartbeat_at`` for ``worker``). The
    same thread writes ``progress`` when it changed, at most once per
    ``CLOUDSYNC_RUN_PROGRESS_SECONDS``, each time in a short UPDATE of its
    own (its own connection: never inside the run's transactions);
    ``merge``: a split run's part, whose kinds go into the run's progress."""
    stop = threading.Event()
    every = settings.CLOUDSYNC_RUN_HEARTBEAT_SECONDS
    tick = every if progress is None else min(every, settings.CLOUDSYNC_RUN_PROGRESS_SECONDS)

    def beat() -> None:
        next_beat = time.monotonic() + every
        written = -1
        try:
            while not stop.wait(tick):
                # Each write on its own: a progress write that fails never
                # costs the heartbeat (the sweeper would take the run over),
                # and is tried again at the next tick.
                if progress is not None and progress.version != written:
                    version = progress.version  # (what the write below holds at least)
                    try:
                        _write_progress(run_id, worker, progress, merge=merge)
                        written = version
                    except DatabaseError as exc:
                        log.warning("sync run #%s: progress not written: %s", run_id, exc)
                        connection.close()  # reconnect for the next write
                if time.monotonic() < next_beat:
                    continue
                next_beat = time.monotonic() + every
                try:
                    if renew is not None:
                        renew()
                        continue
                    SyncRun.objects.filter(
                        pk=run_id, worker=worker, status=RunStatus.RUNNING
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError as exc:  # reconnect on the next beat
                    log.warning("sync run #%s: heartbeat not written: %s", run_id, exc)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _write_progress(run_id: int, worker: str, progress: Progress, *, merge: bool = False) -> None:
    """Record a running run's progress (one UPDATE; a split run's part: a
    read-modify-write of the run's progress under the row's lock)."""
    mine = progress.as_json()
    running = SyncRun.objects.filter(pk=run_id, worker=worker, status=RunStatus.RUNNING)
    if not merge:
        running.update(progress=mine)
        return
    with transaction.atomic():
        stored = running.select_for_update().values_list("progress", flat=True).first()
        if stored is not None:
            running.update(progress=merged(stored, mine))


def _count_run_on_commit(run_id: int) -> None:
    transaction.on_commit(partial(_count_run, run_id))


def _count_run(run_id: int) -> None:
    """The run ended: count it in the metrics (``sync.metrics``)."""
    try:
        run = SyncRun.objects.select_related("cloudprovider").filter(pk=run_id).first()
        if run is None or run.status == RunStatus.RUNNING:
            return
        failures = None
        if run.kind == RunKind.FULL:
            failures = 0
            for status in (SyncRun.objects.filter(cloudprovider_id=run.cloudprovider_id,
                                                  kind=RunKind.FULL)
                           .exclude(status=RunStatus.RUNNING)
                           .order_by("-started_at", "-id").values_list("status", flat=True)[:50]):
                if status != RunStatus.FAILED:
                    break
                failures += 1
        finished = run.finished_at or timezone.now()
        metrics.run_finished(
            provider_id=run.cloudprovider_id, driver=run.cloudprovider.cloud_sync_driver,
            kind=run.kind, outcome=run.status,
            duration=(finished - run.started_at).total_seconds(),
            objects_listed=int((run.progress or {}).get("seen") or 0),
            drift_healed=run.drift_healed, finished_at=finished.timestamp(),
            consecutive_failures=failures,
            events_applied=run.events_applied, event_coverage=run.event_coverage,
        )
    except DatabaseError as exc:  # metrics never fail a run
        log.warning("sync run #%s: not counted in the metrics: %s", run_id, exc)


def _count_retry(run_id: int) -> None:
    try:
        row = (SyncRun.objects.filter(pk=run_id)
               .values_list("cloudprovider_id", "cloudprovider__cloud_sync_driver", "kind").first())
    except DatabaseError:
        return
    if row is not None:
        metrics.count_run_retry(*row)


def release_for_retry(run_id: int, countdown: float) -> None:
    """The task will retry the run after ``countdown`` s: let the retry take it
    then, and keep the sweeper off it until well after."""
    SyncRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, worker=_executor_id()).update(
        worker="", heartbeat_at=timezone.now() + timedelta(seconds=countdown)
    )
    _count_retry(run_id)


def abandoned_runs() -> list[int]:
    """Running runs whose executor stopped renewing the heartbeat (or that no
    worker ever started): the sweeper queues them again to be taken over."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CLOUDSYNC_RUN_STALE_SECONDS)
    return list(
        SyncRun.objects.filter(status=RunStatus.RUNNING)
        .exclude(kind=RunKind.SNAPSHOT)  # executed inside its event's transaction
        .filter(_executor_gone(now) | Q(heartbeat_at__isnull=True, started_at__lt=stale))
        .values_list("pk", flat=True)
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, AuthError):
        prefix = "authentication failed"
    elif isinstance(exc, NetworkError):
        prefix = "network error"
    else:
        prefix = "API error"
    text = str(exc)
    return text if text.lower().startswith(prefix) else f"{prefix}: {text}"


def fail_run(run: SyncRun, error: str) -> None:
    """Record a failed run (nothing more is applied) and release the lock."""
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, error=error[:5000], finished_at=now
    )
    split.clear(run.pk)
    if run.kind != RunKind.DRY_RUN:
        CloudProvider.objects.filter(pk=run.cloudprovider_id).update(
            last_full_sync_at=now, last_full_sync_status=RunStatus.FAILED
        )
    _count_run_on_commit(run.pk)


def request_plan_apply(run: SyncRun, *, triggered_by: str = "") -> SyncRun:
    """Queue the application of a run's stored plan (dry run / needs approval)."""
    if run.status not in (RunStatus.NEEDS_APPROVAL, RunStatus.PLANNED) or not run.plan:
        raise PlanNotApplicable(f"run #{run.pk} has no stored plan to apply (status {run.status})")
    try:
        queueing.send_task(names.APPLY_PLAN, run_id=run.pk, triggered_by=triggered_by)
    except Exception as exc:
        raise QueueUnavailable(f"could not queue the plan: {exc}") from exc
    return run


def apply_stored_plan(run_id: int, *, triggered_by: str = "") -> SyncRun:
    """Apply a stored plan now (task body, and the management command)."""
    run = SyncRun.objects.select_related("cloudprovider").filter(pk=run_id).first()
    if run is None:
        raise PlanNotApplicable(f"sync run #{run_id} no longer exists")
    if run.status not in (RunStatus.NEEDS_APPROVAL, RunStatus.PLANNED) or not run.plan:
        raise PlanNotApplicable(f"run #{run.pk} has no stored plan to apply (status {run.status})")
    _check_not_superseded(run)
    # The listing began about when the run did (execute_run); a pushed
    # snapshot's listing time is not kept, so it resurrects nothing here.
    listed_at = None if run.kind == RunKind.SNAPSHOT else run.started_at
    result = apply_plan(run.cloudprovider, run.plan, ref=str(run.pk), started_at=run.started_at,
                        listed_at=listed_at,
                        cause=Cause(HistoryCause.PLAN, run_id=run.pk,
                                    actor=triggered_by or "operator"))
    counts = run.counts or {}
    for kind, values in result.counts.items():
        merged = counts.setdefault(kind, {})
        for outcome, n in values.items():
            merged[outcome] = merged.get(outcome, 0) + n
    run.status, run.counts = RunStatus.APPLIED, counts
    run.drift_healed = run.drift_healed + result.drift_healed
    run.error = (run.error + f"\nplan applied by {triggered_by or 'operator'} at "
                 f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC").strip()
    run.save(update_fields=["status", "counts", "drift_healed", "error"])
    return run


def _check_not_superseded(run: SyncRun) -> None:
    """A plan describes the cloud as one listing saw it: once a later listing
    of the provider began, the plan is stale and must not be applied, even
    if that listing is still running or failed part-way (an object it found
    unchanged is not rewritten, so nothing else records that it saw it)."""
    newer = (
        SyncRun.objects.filter(
            cloudprovider_id=run.cloudprovider_id,
            started_at__gt=run.started_at,
            kind__in=(RunKind.FULL, RunKind.SNAPSHOT),
        )
        .exclude(status=RunStatus.PLANNED)  # a dry run applies nothing
        .order_by("started_at")
        .first()
    )
    if newer is not None:
        raise PlanNotApplicable(
            f"run #{run.pk}'s plan is superseded by run #{newer.pk} "
            f"({newer.get_kind_display().lower()}, {newer.status}); start a new dry run instead"
        )


def fail_run_by_id(run_id: int, exc: Exception) -> bool:
    """The last retry failed: record why (auth vs network vs API) and unlock.
    False if the run no longer exists (nothing to record)."""
    run = SyncRun.objects.filter(pk=run_id).first()
    if run is None:
        log.warning("sync run #%s no longer exists; dropping its task", run_id)
        return False
    fail_run(run, _describe(exc))
    return True


def start_all(kind: str, *, triggered_by: str = "") -> dict[str, str]:
    """Start ``kind`` runs of every provider that ``check_can_start`` allows;
    the others are listed as skipped, with the reason."""
    outcome: dict[str, str] = {}
    for provider in CloudProvider.objects.order_by("pk"):
        try:
            run = start_run(provider, kind, triggered_by=triggered_by)
        except (RunInProgress, RunRefused) as exc:
            outcome[provider.name] = f"skipped: {exc}"
        else:
            outcome[provider.name] = f"run #{run.pk}"
    return outcome


def release_runs(runs_qs: QuerySet[SyncRun], *, by: str) -> int:
    """Operator action: fail runs still marked running (their worker died),
    releasing the per-provider lock. Returns how many were released."""
    return runs_qs.filter(status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error=f"released by {by}: marked failed while running",
    )
