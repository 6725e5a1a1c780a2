"""Tasks left in Redis by an earlier ``make run`` (then ``make clean``) name
providers, runs and events that no longer exist. A real worker must drop
each with one clear log line: no exception, no traceback, and no retrying
forever (a few quick retries are tolerated: a run queued from a transaction
that has not committed yet is briefly invisible; the retry policy bounds them)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from celery.signals import task_failure, task_postrun, task_retry
from django.utils import timezone

from project.celery import app as celery_app
from sync.queueing import enqueue_ingest
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MISSING = 987654  # no provider, run or event has this id in a fresh test database
GONE = ("no longer exist", "does not exist", "not found", "unknown", "dropp", "missing", "gone")


@dataclass
class Outcomes:
    """What the worker did with each task id, from Celery's own signals."""

    finished: dict[str, list[str]] = field(default_factory=dict)  # task id -> states
    retried: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # task id -> exception
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def outcomes() -> Iterator[Outcomes]:
    seen = Outcomes()

    def on_postrun(task_id=None, state=None, **kwargs) -> None:
        with seen.lock:
            seen.finished.setdefault(task_id, []).append(state)

    def on_retry(request=None, **kwargs) -> None:
        with seen.lock:
            seen.retried.append(getattr(request, "id", None))

    def on_failure(task_id=None, exception=None, **kwargs) -> None:
        with seen.lock:
            seen.failed[task_id] = repr(exception)

    task_postrun.connect(on_postrun, weak=False)
    task_retry.connect(on_retry, weak=False)
    task_failure.connect(on_failure, weak=False)
    try:
        yield seen
    finally:
        task_postrun.disconnect(on_postrun)
        task_retry.disconnect(on_retry)
        task_failure.disconnect(on_failure)


def _ingest() -> str:
    # exactly what the web process queued for a provider since deleted
    body = '{"message_id": "stale-1", "event_type": "compute.instance.create.end"}'
    return enqueue_ingest(MISSING, body, timezone.now())


def _send(name: str, **kwargs) -> Callable[[], str]:
    return lambda: celery_app.send_task(name, kwargs=kwargs).id


CASES = {
    "ingest: provider gone": _ingest,
    "run_sync: run gone": _send("sync.tasks.run_sync", run_id=MISSING),
    "apply_plan: run gone": _send("sync.tasks.apply_plan", run_id=MISSING),
    "replay: events gone": _send("sync.tasks.replay", event_ids=[MISSING, MISSING + 1]),
}


def _final(outcomes: Outcomes, task_id: str) -> str | None:
    with outcomes.lock:
        states = outcomes.finished.get(task_id) or []
    return states[-1] if states and states[-1] != "RETRY" else None


@pytest.mark.parametrize("case", list(CASES))
def test_a_task_for_something_gone_is_dropped_with_one_log_line(
    case: str, celery_worker, outcomes: Outcomes, caplog, settings
) -> None:
    # Short backoff, so bounded retries end within the test's patience; a
    # task that retries without bound never reaches a final state below.
    settings.CLOUDSYNC_RETRY_BASE_SECONDS = 0.05
    settings.CLOUDSYNC_RETRY_CAP_SECONDS = 0.2
    caplog.set_level(logging.INFO)
    task_id = CASES[case]()
    state = wait_for(lambda: _final(outcomes, task_id), timeout=30)
    time.sleep(1.0)  # nothing more may happen to it now

    assert outcomes.finished[task_id][-1] == state, f"{case}: ran again after {state}"
    assert len(outcomes.retried) <= max(settings.CLOUDSYNC_RETRY_MAX, settings.CLOUDSYNC_SYNC_RETRY_MAX)
    assert outcomes.failed == {}, f"{case}: raised {outcomes.failed}"
    assert state == "SUCCESS"
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("sync") and str(MISSING) in r.getMessage()
        and any(word in r.getMessage().lower() for word in GONE)
    ]
    assert len(lines) == 1, (
        f"{case}: expected one clear log line naming {MISSING}; sync log: "
        f"{[(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith('sync')]}"
    )
