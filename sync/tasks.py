"""Celery tasks: thin glue over ``sync`` services. Ids in, one service call,
retry policy from ``retry_countdown`` (the only place that decides backoff)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings

from sync import ingest
from sync.db_outage import DatabaseUnavailable, wait_out_outage

__all__ = ["apply_plan", "ingest_task", "replay_events", "retry_countdown", "run_sync", "sweep", "sync_all"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_countdown(retries: int) -> float:
    """Exponential backoff with full jitter, capped (seconds before the next try)."""
    ceiling = min(
        settings.CLOUDSYNC_RETRY_CAP_SECONDS,
        settings.CLOUDSYNC_RETRY_BASE_SECONDS * (2**retries),
    )
    return random.uniform(ceiling / 2, ceiling)


def _retry_or_bury(task: Any, report: ingest.IngestReport, **kwargs: Any) -> None:
    """Temporary errors are retried with backoff; after the last one, dead-letter."""
    if not report.retry:
        return
    ingest.count_attempt(report.retry)
    if task.request.retries >= settings.CLOUDSYNC_RETRY_MAX:
        ingest.mark_retry_exhausted(report.retry)
        log.error("events %s dead after %s retries: %s", report.retry, task.request.retries,
                  report.last_error)
        return
    raise task.retry(
        kwargs=kwargs, countdown=retry_countdown(task.request.retries), exc=report.last_error
    )


def _through_outages(work: Callable[[], T], what: str) -> T:
    """Run ``work`` holding the message while the database is down; past the
    outage budget, hand the message back to its queue (never acknowledge it)."""
    try:
        return wait_out_outage(work, what=what)
    except DatabaseUnavailable as exc:
        log.error("%s; message returned to the queue", exc)
        raise Reject(exc, requeue=True) from exc


@shared_task(bind=True, name="sync.tasks.ingest", acks_late=True, max_retries=None)
def ingest_task(self: Any, provider_id: int, body: str, received_at: str | None = None) -> dict:
    """Record + apply one webhook body queued by the endpoint."""
    when = datetime.fromisoformat(received_at) if received_at else None
    report = _through_outages(
        lambda: ingest.ingest_body(provider_id, body, when), f"ingesting for provider {provider_id}"
    )
    _retry_or_bury(self, report, provider_id=provider_id, body=body, received_at=received_at)
    return {"events": report.events, "processed": report.processed, "failed": report.failed}


@shared_task(bind=True, name="sync.tasks.replay", acks_late=True, max_retries=None)
def replay_events(self: Any, event_ids: list[int]) -> dict:
    """Re-process events by id (operator replay, retries, the sweeper)."""
    report = _through_outages(lambda: ingest.replay(event_ids), "replaying events")
    _retry_or_bury(self, report, event_ids=report.retry)
    return {"events": report.events, "processed": report.processed, "failed": report.failed}


@shared_task(name="sync.tasks.sweep", expires=300)
def sweep() -> dict:
    """Beat: re-queue events stuck in the inbox and runs whose worker died."""
    from sync import sweeper

    return sweeper.sweep()


@shared_task(bind=True, name="sync.tasks.run_sync", acks_late=True, max_retries=None)
def run_sync(self: Any, run_id: int) -> dict:
    """Execute a claimed SyncRun; auth/network failures retry the whole listing."""
    from sync import runs
    from sync.drivers.base import TemporaryError

    try:
        run = runs.execute_run(run_id)
    except TemporaryError as exc:
        if self.request.retries >= settings.CLOUDSYNC_SYNC_RETRY_MAX:
            runs.fail_run_by_id(run_id, exc)
            return {"run": run_id, "status": "failed"}
        countdown = retry_countdown(self.request.retries)
        runs.release_for_retry(run_id, countdown)
        raise self.retry(countdown=countdown, exc=exc) from exc
    return {"run": run.pk, "status": run.status, "drift_healed": run.drift_healed}


@shared_task(name="sync.tasks.apply_plan", acks_late=True)
def apply_plan(run_id: int, triggered_by: str = "") -> dict:
    """Apply a stored plan (dry run, or deletions held back by the guard)."""
    from sync import runs

    try:
        run = runs.apply_stored_plan(run_id, triggered_by=triggered_by)
    except runs.PlanNotApplicable as exc:  # gone, or applied meanwhile: nothing to do
        log.warning("apply_plan dropped: %s", exc)
        return {"run": run_id, "status": "not applicable"}
    return {"run": run.pk, "status": run.status}


@shared_task(name="sync.tasks.sync_all", expires=3600)
def sync_all(kind: str = "full") -> dict:
    """Beat entry point: start a run for every enabled provider that supports it."""
    from sync import runs

    return runs.start_all(kind, triggered_by="beat")
