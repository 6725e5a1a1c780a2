"""Celery tasks: thin glue over ``sync`` services. Ids in, one service call,
retry policy from ``retry_countdown`` (the only place that decides backoff)."""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from celery import shared_task
from django.conf import settings

from sync import ingest

__all__ = ["apply_plan", "ingest_task", "replay_events", "retry_countdown", "run_sync", "sync_all"]

log = logging.getLogger(__name__)


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


@shared_task(bind=True, name="sync.tasks.ingest", acks_late=True, max_retries=None)
def ingest_task(self: Any, provider_id: int, body: str, received_at: str | None = None) -> dict:
    """Record + apply one webhook body queued by the endpoint."""
    when = datetime.fromisoformat(received_at) if received_at else None
    report = ingest.ingest_body(provider_id, body, when)
    _retry_or_bury(self, report, provider_id=provider_id, body=body, received_at=received_at)
    return {"events": report.events, "processed": report.processed, "failed": report.failed}


@shared_task(bind=True, name="sync.tasks.replay", acks_late=True, max_retries=None)
def replay_events(self: Any, event_ids: list[int]) -> dict:
    """Re-process failed/dead events (operator action)."""
    report = ingest.replay(event_ids)
    _retry_or_bury(self, report, event_ids=report.retry)
    return {"events": report.events, "processed": report.processed, "failed": report.failed}


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
        raise self.retry(countdown=retry_countdown(self.request.retries), exc=exc) from exc
    return {"run": run.pk, "status": run.status, "drift_healed": run.drift_healed}


@shared_task(name="sync.tasks.apply_plan", acks_late=True)
def apply_plan(run_id: int, triggered_by: str = "") -> dict:
    """Apply a stored plan (dry run, or deletions held back by the guard)."""
    from sync import runs

    run = runs.apply_stored_plan(run_id, triggered_by=triggered_by)
    return {"run": run.pk, "status": run.status}


@shared_task(name="sync.tasks.sync_all", expires=3600)
def sync_all(kind: str = "full") -> dict:
    """Beat entry point: start a run for every enabled provider that supports it."""
    from sync import runs

    return runs.start_all(kind, triggered_by="beat")
