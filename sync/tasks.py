"""Celery tasks: thin glue over ``sync`` services. Ids in, one service call.

``sync.tasks.ingest`` is consumed in batches (``sync.batching``): each
message is acknowledged only after the batch it came in was committed, or
rejected back to its queue. Backoff comes from ``sync.retries``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings
from django.db import DatabaseError

from sync import ingest, journal, names, retention, runs, sweeper
from sync.batching import ACK, REQUEUE, BatchTask
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.db_outage import DatabaseUnavailable, wait_out_outage
from sync.drivers.base import TemporaryError
from sync.errors import PlanNotApplicable, RunFailed
from sync.retries import retry_countdown

__all__ = ["apply_plan", "finish_split", "ingest_task", "purge", "replay_events", "run_sync",
           "split_failed", "sweep", "sync_all", "sync_part"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _through_outages(work: Callable[[], T], what: str) -> T:
    """Run ``work`` holding the message while the database is down; past the
    outage budget, hand the message back to its queue (never acknowledge it)."""
    try:
        return wait_out_outage(work, what=what)
    except DatabaseUnavailable as exc:
        log.error("%s; message returned to the queue", exc)
        raise Reject(exc, requeue=True) from exc


def _bodies(batch: list[tuple[str, dict]]) -> list[ingest.Body]:
    return [ingest.Body(kw.get("provider_id"), kw.get("body"), kw.get("received_at"))
            for _, kw in batch]


class _BodyBatches(BatchTask):
    """Batches of queued webhook bodies, cut by count and by size: a batch
    of large multi-message bodies is handed over early, so the pool's
    processes share the backlog instead of one taking it all."""

    abstract = True

    def weigh(self, kwargs: dict) -> int:
        body = kwargs.get("body")
        return len(body) if isinstance(body, str) else 1


@shared_task(
    base=_BodyBatches, name=names.INGEST, acks_late=True,
    flush_every=settings.CLOUDSYNC_INGEST_BATCH_SIZE,
    flush_weight=settings.CLOUDSYNC_INGEST_BATCH_BYTES,
    flush_interval=settings.CLOUDSYNC_INGEST_FLUSH_SECONDS,
)
def ingest_task(batch: list[tuple[str, dict]]) -> list[str]:
    """Record + apply a batch of webhook bodies queued by the endpoint; then
    they leave the journal of accepted messages, and are acknowledged."""
    try:
        _through_outages(lambda: ingest.ingest_bodies(_bodies(batch)),
                         f"ingesting {len(batch)} bodies")
    except Reject:
        return [REQUEUE] * len(batch)
    except Exception:  # a bug or a refusal the batch path did not isolate: body by body
        log.exception("ingesting a batch of %d failed; ingesting body by body", len(batch))
        return [_ingest_alone(task_id, kwargs) for task_id, kwargs in batch]
    journal.forget(task_id for task_id, _ in batch)
    return [ACK] * len(batch)


def _ingest_alone(task_id: str, kwargs: dict) -> str:
    """One body on its own; one that still fails is recorded whole, failed."""
    [body] = _bodies([(task_id, kwargs)])
    try:
        _through_outages(lambda: ingest.ingest_bodies([body]), "ingesting a body")
    except Reject:
        return REQUEUE
    except Exception as exc:
        log.exception("body %s could not be ingested; recording it as failed", task_id)
        error = exc
        try:
            _through_outages(lambda: ingest.record_failed_body(body, error), "recording a body")
        except Exception:
            return REQUEUE
    journal.forget([task_id])
    return ACK


@shared_task(name=names.REPLAY, acks_late=True)
def replay_events(event_ids: list[int]) -> dict:
    """Process events by id (operator replay, retries, the sweeper)."""
    report = _through_outages(lambda: ingest.replay(event_ids), "replaying events")
    return {"events": report.events, "processed": report.processed, "failed": report.failed,
            "retry": len(report.retry)}


# Beat's tasks are acknowledged on receipt: beat sends them again on its next
# tick, and a late acknowledgement of a message from a connection that died
# meanwhile (Redis restarted) raises inside kombu on the consumer's loop.
@shared_task(name=names.SWEEP, expires=300, acks_late=False)
def sweep() -> dict:
    """Beat: re-queue events stuck in the inbox and runs whose worker died."""
    return sweeper.sweep()


@shared_task(name=names.PURGE, expires=3600, acks_late=False)
def purge() -> dict:
    """Beat: remove what is past each retention window (sync/retention.py)."""
    run = retention.purge()
    return {"purge": run.pk, "removed": run.removed, "batches": run.batches}


@shared_task(bind=True, name=names.RUN_SYNC, acks_late=True, max_retries=None)
def run_sync(self: Any, run_id: int) -> dict:
    """Execute a claimed SyncRun; auth/network failures retry the whole listing.

    A run that ends failed (recorded on the run first) raises ``RunFailed``:
    the task is failed in Celery's and Flower's eyes, and its message is
    acknowledged (no second retry path)."""
    try:
        run, executed = runs.execute_run_once(run_id, may_split=True)
    except TemporaryError as exc:
        if self.request.retries >= settings.CLOUDSYNC_SYNC_RETRY_MAX:
            if not runs.fail_run_by_id(run_id, exc):  # the run is gone: nothing failed
                return {"run": run_id, "status": "gone"}
            raise RunFailed(f"sync run #{run_id} failed after {self.request.retries} retries: "
                            f"{exc}") from exc
        countdown = retry_countdown(self.request.retries)
        runs.release_for_retry(run_id, countdown)
        raise self.retry(countdown=countdown, exc=exc) from exc
    if not executed:  # a duplicate message: the run was (or is being) executed elsewhere
        return {"run": run.pk, "status": run.status, "executed_here": False}
    if run.status == RunStatus.FAILED:
        raise RunFailed(f"sync run #{run.pk} failed: {run.error}")
    if run.status == RunStatus.RUNNING:  # split: its parts and finish_split carry on
        return {"run": run.pk, "status": run.status, "split": run.worker}
    return {"run": run.pk, "status": run.status, "drift_healed": run.drift_healed}


# A split full sync (sync/runs.py, sync/split.py): a chord of sync_part tasks,
# then finish_split with their results: the chord counts the finished parts in
# the Redis result backend and keeps their outcomes there for the body, the
# only use of results (every task, the parts included, ignores its own).
@shared_task(bind=True, name=names.SYNC_PART, acks_late=True, max_retries=None)
def sync_part(self: Any, run_id: int, part: str, token: str, busy: int = 0) -> dict:
    """List and apply one part of a split run; auth/network/database failures
    retry the part with backoff, then fail the run. A copy of the task that
    finds a live copy listing the part (the broker redelivers a message
    running past its visibility timeout) asks again later instead of
    waiting in a worker process; ``busy`` counts those, apart from retries."""
    kwargs = {"run_id": run_id, "part": part, "token": token}
    try:
        return runs.execute_part(run_id, part, token)
    except runs.PartBusy as exc:
        raise self.retry(countdown=settings.CLOUDSYNC_RUN_HEARTBEAT_SECONDS,
                         kwargs={**kwargs, "busy": busy + 1}, exc=exc) from exc
    except TemporaryError as exc:
        if self.request.retries - busy >= settings.CLOUDSYNC_SYNC_RETRY_MAX:
            return runs.fail_part(run_id, part, token, exc)
        try:
            runs.release_part(run_id, part, token)
        except DatabaseError:  # the lease goes stale; the retry takes it over then
            log.warning("sync run #%s: part %s lease not released", run_id, part)
        countdown = retry_countdown(self.request.retries - busy)
        raise self.retry(countdown=countdown, kwargs={**kwargs, "busy": busy}, exc=exc) from exc


@shared_task(bind=True, name=names.FINISH_SPLIT, acks_late=True, max_retries=None)
def finish_split(self: Any, parts: list[dict], run_id: int, token: str) -> dict:
    """Every part completed: decide deletions once and record the run."""
    try:
        run = runs.finish_split(run_id, token, parts)
    except TemporaryError as exc:
        if self.request.retries >= settings.CLOUDSYNC_SYNC_RETRY_MAX:
            runs.fail_split(run_id, token, f"finishing the split run failed: {exc}")
            raise RunFailed(f"sync run #{run_id} failed: {exc}") from exc
        raise self.retry(countdown=retry_countdown(self.request.retries), exc=exc) from exc
    if run is None:
        return {"run": run_id, "status": "gone"}
    if run.status == RunStatus.FAILED:
        raise RunFailed(f"sync run #{run.pk} failed: {run.error}")
    return {"run": run.pk, "status": run.status, "drift_healed": run.drift_healed}


@shared_task(name=names.SPLIT_FAILED, acks_late=True)
def split_failed(request: Any, exc: BaseException, traceback: Any, run_id: int, token: str) -> None:
    """The chord failed (a part task itself failed, e.g. killed at the time
    limit): called by Celery instead of ``finish_split``; fails the run."""
    runs.fail_split(run_id, token, f"split run failed: {exc}")


@shared_task(name=names.APPLY_PLAN, acks_late=True)
def apply_plan(run_id: int, triggered_by: str = "") -> dict:
    """Apply a stored plan (dry run, or deletions held back by the guard)."""
    try:
        run = runs.apply_stored_plan(run_id, triggered_by=triggered_by)
    except PlanNotApplicable as exc:  # gone, or applied meanwhile: nothing to do
        log.warning("apply_plan dropped: %s", exc)
        return {"run": run_id, "status": "not applicable"}
    return {"run": run.pk, "status": run.status}


@shared_task(name=names.SYNC_ALL, expires=3600, acks_late=False)
def sync_all(kind: str = "full") -> dict:
    """Beat entry point: start a run for every enabled provider that supports it."""
    return runs.start_all(kind, triggered_by="beat")
