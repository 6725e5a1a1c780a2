"""Prometheus metrics: what the endpoint, the workers and sync runs count.

Every figure is recorded where it happens (the endpoint counts what it
queued; the worker's batch path counts outcomes once per batch; a run counts
itself when it ends) and read by ``/metrics`` (``sync.metrics_view``) with no
database query.

Several processes (gunicorn workers, Celery pool processes) write their own
figures: with ``PROMETHEUS_MULTIPROC_DIR`` set, each keeps them in files of
that directory (prometheus-client's multiprocess mode) and a scrape of any
web process sums them. Files are named by host name and pid, so a directory
shared between containers (whose pids repeat) never mixes two processes.
Without the variable, figures live in this process's memory (one process:
``runserver``, tests, ``cloudsync_sync``).

Labels stay bounded: the provider (its id), its driver, the event type's
*family* (``compute.instance``, not ``compute.instance.create.end``; at most
``MAX_FAMILIES`` per process, then ``other``) and small fixed sets of
outcomes and run kinds. Never object ids.
"""

from __future__ import annotations

import bisect
import os
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, values

__all__ = [
    "EVENT_OUTCOMES",
    "count_events",
    "count_received",
    "count_run_retry",
    "event_family",
    "mark_process_dead",
    "multiprocess_dir",
    "observe_lags",
    "process_identifier",
    "run_finished",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The multiprocess directory, or None (figures kept in this process)."""
    return os.environ.get(MULTIPROC_ENV) or None


_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:60] or "host"


def process_identifier(pid: int | None = None) -> str:
    """This process's (or ``pid``'s, on this host) name in the multiprocess
    directory's file names: ``<host>-<pid>`` (no ``_``: prometheus-client
    splits file names on it)."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if multiprocess_dir():
    os.makedirs(multiprocess_dir(), exist_ok=True)
    # Before any metric below is created: they take values.ValueClass then.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

EVENT_OUTCOMES = ("processed", "ignored", "failed", "dead", "duplicate", "retry")
MAX_FAMILIES = 64

EVENTS_RECEIVED = Counter(
    "cloudsync_events_received",
    "Messages accepted by the webhook endpoint (answered 202 and queued).",
    ["provider", "driver"],
)
EVENTS = Counter(
    "cloudsync_events",
    "Events by outcome, as the worker's batch path settled them: processed, ignored, failed, "
    "dead (retries used up), duplicate (already final, or a second copy), retry (left queued "
    "for a retry, or waiting for the provider's running sync).",
    ["provider", "driver", "family", "outcome"],
)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
EVENT_LAG = Histogram(
    "cloudsync_event_lag_seconds",
    "Time from the endpoint receiving an event to the worker finishing it (processed or ignored).",
    ["provider", "driver"],
    buckets=LAG_BUCKETS,
)
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800)
SYNC_RUNS = Counter(
    "cloudsync_sync_runs",
    "Sync runs that ended, by kind (full, catch_up, dry_run, snapshot) and outcome "
    "(succeeded, failed, needs_approval, planned).",
    ["provider", "driver", "kind", "outcome"],
)
SYNC_RUN_DURATION = Histogram(
    "cloudsync_sync_run_duration_seconds",
    "Duration of sync runs that ended, start to finish.",
    ["provider", "driver", "kind"],
    buckets=RUN_BUCKETS,
)
SYNC_OBJECTS_LISTED = Counter(
    "cloudsync_sync_objects_listed",
    "Objects listed by sync runs that ended.",
    ["provider", "driver", "kind"],
)
SYNC_DRIFT_HEALED = Counter(
    "cloudsync_sync_drift_healed",
    "Objects a sync run created, changed or deleted (drift the events had missed).",
    ["provider", "driver", "kind"],
)
SYNC_RUN_RETRIES = Counter(
    "cloudsync_sync_run_retries",
    "Sync runs (or parts of split runs) retried after a temporary error (auth, network, database).",
    ["provider", "driver", "kind"],
)


def _last(name: str, doc: str) -> Gauge:
    # mostrecent: the value of the last write, whichever process wrote it
    # (kept after that process exits), as in a single process.
    return Gauge(name, doc, ["provider", "driver"], multiprocess_mode="mostrecent")


LAST_FULL_SYNC_SUCCESS = _last(
    "cloudsync_last_full_sync_success",
    "1 if the provider's last finished full sync succeeded (or needs approval), 0 if it failed.")
LAST_FULL_SYNC_FINISHED = _last(
    "cloudsync_last_full_sync_finished_timestamp_seconds",
    "When the provider's last full sync ended (Unix time).")
LAST_FULL_SYNC_DURATION = _last(
    "cloudsync_last_full_sync_duration_seconds", "Duration of the provider's last finished full sync.")
LAST_FULL_SYNC_OBJECTS = _last(
    "cloudsync_last_full_sync_objects_listed", "Objects the provider's last finished full sync listed.")
LAST_FULL_SYNC_DRIFT = _last(
    "cloudsync_last_full_sync_drift_healed",
    "Objects the provider's last finished full sync created, changed or deleted.")
LAST_FULL_SYNC_EVENTS_APPLIED = _last(
    "cloudsync_last_full_sync_events_applied",
    "Of the objects changed since the previous full sync, how many events had applied "
    "(sync/coverage.py); the rest is the run's drift healed.")
LAST_FULL_SYNC_EVENT_COVERAGE = _last(
    "cloudsync_last_full_sync_event_coverage_ratio",
    "Event coverage (0-1) of the last measured full sync: events applied / (events applied + "
    "drift healed). Low: events are being lost upstream.")
FULL_SYNC_FAILURES = _last(
    "cloudsync_full_sync_consecutive_failures",
    "Full syncs of the provider that failed in a row, up to the last one (0 after a success).")


# -- event type families ------------------------------------------------------
_families: dict[str, str] = {}
_UNSAFE = re.compile(r"[^a-z0-9_.:-]+")


_PHASE_WORDS = frozenset({"start", "end", "error"})


def event_family(event_type: str) -> str:
    """The bounded label for an event type: what it is about, without the
    action and its phase, at most two dotted segments
    (``compute.instance.create.end`` → ``compute.instance``,
    ``instance.create.end`` → ``instance``, ``image.update`` → ``image``);
    an undotted type (EventBridge's detail-type) lowercased, spaces as ``-``;
    at most 40 characters; ``unknown`` when empty; ``other`` once this
    process has seen ``MAX_FAMILIES``."""
    family = _families.get(event_type)
    if family is not None:
        return family
    text = _UNSAFE.sub("-", event_type.strip().lower()).strip("-")
    segments = [part for part in text.split(".") if part]
    if len(segments) > 1 and segments[-1] in _PHASE_WORDS:
        segments.pop()
    if len(segments) > 1:
        segments.pop()  # the action: create, update, delete, ...
    family = ".".join(segments[:2])[:40] or "unknown"
    if len(set(_families.values())) >= MAX_FAMILIES and family not in _families.values():
        family = "other"
    if len(_families) < 10_000:
        _families[event_type] = family
    return family


# -- recording ----------------------------------------------------------------
_received: dict[tuple[int, str], Any] = {}


def count_received(provider_id: int, driver: str, messages: int) -> None:
    """The endpoint queued ``messages`` messages for the provider (the
    labelled child is kept: this runs on every request)."""
    child = _received.get((provider_id, driver))
    if child is None:
        child = _received[(provider_id, driver)] = EVENTS_RECEIVED.labels(str(provider_id), driver)
    child.inc(messages)


def count_events(provider_id: int, driver: str, outcomes: Mapping[tuple[str, str], int]) -> None:
    """One batch's settled events: ``outcomes`` maps (event type, outcome) to
    how many; one increment per family and outcome."""
    per_family: dict[tuple[str, str], int] = {}
    for (event_type, outcome), n in outcomes.items():
        key = (event_family(event_type), outcome)
        per_family[key] = per_family.get(key, 0) + n
    provider = str(provider_id)
    for (family, outcome), n in per_family.items():
        if n:
            EVENTS.labels(provider, driver, family, outcome).inc(n)


def observe_lags(provider_id: int, driver: str, lags: Iterable[float]) -> None:
    """A batch's lags: counted into buckets here, then one increment per
    bucket used (rather than one ``observe`` per event)."""
    child = EVENT_LAG.labels(str(provider_id), driver)
    buckets = getattr(child, "_buckets", None)
    total_sum = getattr(child, "_sum", None)
    lags = list(lags)
    if buckets is None or total_sum is None or len(buckets) != len(LAG_BUCKETS) + 1:
        for lag in lags:  # prometheus-client changed inside: the public, slower way
            child.observe(lag)
        return
    per_bucket: dict[int, int] = {}
    for lag in lags:
        index = bisect.bisect_left(LAG_BUCKETS, lag)  # the first bound >= lag; +Inf last
        per_bucket[index] = per_bucket.get(index, 0) + 1
    for index, n in per_bucket.items():
        buckets[index].inc(n)
    if lags:
        total_sum.inc(sum(lags))


def count_run_retry(provider_id: int, driver: str, kind: str) -> None:
    SYNC_RUN_RETRIES.labels(str(provider_id), driver, kind).inc()


def run_finished(
    *, provider_id: int, driver: str, kind: str, outcome: str, duration: float,
    objects_listed: int, drift_healed: int, finished_at: float,
    consecutive_failures: int | None = None,
    events_applied: int | None = None, event_coverage: float | None = None,
) -> None:
    """A run ended (recorded in the database first). ``events_applied`` /
    ``event_coverage``: its event coverage, where it was measured
    (``sync.coverage``; None for a provider's first full sync, or when
    nothing changed)."""
    provider = str(provider_id)
    SYNC_RUNS.labels(provider, driver, kind, outcome).inc()
    SYNC_RUN_DURATION.labels(provider, driver, kind).observe(max(duration, 0.0))
    if objects_listed:
        SYNC_OBJECTS_LISTED.labels(provider, driver, kind).inc(objects_listed)
    if drift_healed:
        SYNC_DRIFT_HEALED.labels(provider, driver, kind).inc(drift_healed)
    if kind != "full":
        return
    LAST_FULL_SYNC_SUCCESS.labels(provider, driver).set(0 if outcome == "failed" else 1)
    LAST_FULL_SYNC_FINISHED.labels(provider, driver).set(finished_at)
    LAST_FULL_SYNC_DURATION.labels(provider, driver).set(max(duration, 0.0))
    LAST_FULL_SYNC_OBJECTS.labels(provider, driver).set(objects_listed)
    LAST_FULL_SYNC_DRIFT.labels(provider, driver).set(drift_healed)
    if consecutive_failures is not None:
        FULL_SYNC_FAILURES.labels(provider, driver).set(consecutive_failures)
    if events_applied is not None:
        LAST_FULL_SYNC_EVENTS_APPLIED.labels(provider, driver).set(events_applied)
    if event_coverage is not None:
        LAST_FULL_SYNC_EVENT_COVERAGE.labels(provider, driver).set(event_coverage)


def mark_process_dead(pid: int) -> None:
    """A process of this host ended (gunicorn's ``child_exit``, Celery's
    ``worker_process_shutdown``): its live gauges leave the directory.
    Counters, histograms and most-recent gauges stay (totals include what
    dead processes counted)."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_identifier(pid), path)
