"""The figures of the status page and its API, per provider and for all.

Everything here is read from small tables or indexes, so it stays fast
whatever the size of the inbox: event counts and lags from the per-5-minute
rollups (``sync.rollups``; a provider's day is at most a few thousand rows),
inbox backlogs (queued, failed, dead) from the ``(provider, status)`` index,
queue depths from Redis (list lengths), runs from ``SyncRun`` (coverage is
stored on each full sync when it ends, ``sync.coverage``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import redis
from django.db import connections
from django.db.models import Count, Sum
from django.utils import timezone

from sync import names, queueing
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudProvider, Event, EventRollup, SyncRun
from sync.rollups import LAG_BOUNDS, LAGGED, OUTCOMES, PERIOD, period_of

__all__ = [
    "COVERAGE_RUNS",
    "STEPS",
    "WINDOW",
    "coverage_series",
    "event_series",
    "inbox_backlog",
    "last_full_sync",
    "overview",
    "percentile",
    "provider_status",
    "queue_depths",
]

WINDOW = timedelta(hours=24)
STEPS = (300, 900, 3600)  # chart resolutions offered (seconds; multiples of PERIOD)
COVERAGE_RUNS = 30
BACKLOG = (Status.QUEUED, Status.FAILED, Status.DEAD)
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: "<queue>\x06\x16<priority>" lists
UNACKED = "unacked"  # kombu: messages reserved by workers, all queues


def percentile(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a lag histogram {bucket index: count}, as
    the upper bound of the bucket holding the nearest rank (ceil(q·n)): at
    least that share of the events took at most this long. None without
    events; the last bound when the rank falls beyond it."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return LAG_BOUNDS[min(index, len(LAG_BOUNDS) - 1)]
    return LAG_BOUNDS[-1]


def _window(now: datetime, step: int) -> tuple[datetime, datetime]:
    """[start, end) of the last 24 h in whole steps, the current one included."""
    end = period_of(now) + timedelta(seconds=PERIOD)
    epoch = int(end.timestamp())
    if epoch % step:
        end += timedelta(seconds=step - epoch % step)
    return end - WINDOW, end


def event_series(provider_ids: Iterable[int] | None, *, now: datetime | None = None,
                 step: int = 300) -> dict[str, Any]:
    """Events received / processed / ignored / failed / dead per ``step``
    seconds over the last 24 h, and the lag percentiles (p50, p99) per
    step and over the whole window, for some providers (None: all)."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}")
    start, end = _window(now or timezone.now(), step)
    ids = None if provider_ids is None else list(provider_ids)
    n_steps = int(WINDOW.total_seconds()) // step
    counts = [dict.fromkeys(OUTCOMES, 0) for _ in range(n_steps)]
    lags: list[dict[int, int]] = [defaultdict(int) for _ in range(n_steps)]
    whole: dict[int, int] = defaultdict(int)
    for i, outcome, bucket, n in _per_step(ids, start, end, step):
        if outcome not in OUTCOMES or not 0 <= i < n_steps:
            continue
        counts[i][outcome] += n
        if outcome in LAGGED and bucket >= 0:
            lags[i][bucket] += n
            whole[bucket] += n
    series = [
        {"start": start + timedelta(seconds=i * step), **counts[i],
         "lag_p50_seconds": percentile(lags[i], 0.5), "lag_p99_seconds": percentile(lags[i], 0.99)}
        for i in range(n_steps)
    ]
    totals = {outcome: sum(c[outcome] for c in counts) for outcome in OUTCOMES}
    return {
        "start": start, "end": end, "step_seconds": step, "totals": totals,
        "lag_p50_seconds": percentile(whole, 0.5), "lag_p99_seconds": percentile(whole, 0.99),
        "series": series,
    }


def _per_step(ids: list[int] | None, start: datetime, end: datetime,
              step: int) -> Iterable[tuple[int, str, int, int]]:
    """(step index, outcome, lag bucket, count) of the rollups in [start, end).
    On Postgres grouped by step in SQL (a few thousand small rows instead of
    a row per period, each with a datetime to convert); elsewhere in Python."""
    connection = connections[EventRollup.objects.db]
    if connection.vendor != "postgresql":
        qs = EventRollup.objects.filter(period__gte=start, period__lt=end)
        if ids is not None:
            qs = qs.filter(cloudprovider_id__in=ids)
        for period, outcome, bucket, n in (qs.values_list("period", "outcome", "lag_bucket")
                                           .annotate(n=Sum("count")).order_by()):
            yield int((period - start).total_seconds()) // step, outcome, bucket, n
        return
    qn = connection.ops.quote_name
    where = f" AND {qn('cloudprovider_id')} = ANY(%s::bigint[])" if ids is not None else ""
    sql = (f"SELECT extract(epoch FROM {qn('period')} - %s)::bigint / %s, {qn('outcome')}, "
           f"{qn('lag_bucket')}, sum({qn('count')})::bigint "
           f"FROM {qn(EventRollup._meta.db_table)} WHERE {qn('period')} >= %s "
           f"AND {qn('period')} < %s{where} GROUP BY 1, 2, 3")
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, step, start, end, *([ids] if ids is not None else [])])
        yield from cursor.fetchall()


def _totals_by_provider(now: datetime) -> dict[int, dict[str, Any]]:
    """Each provider's 24 h totals and lag percentiles (one grouped query)."""
    start, end = _window(now, 300)
    rows = (EventRollup.objects.filter(period__gte=start, period__lt=end)
            .values_list("cloudprovider_id", "outcome", "lag_bucket")
            .annotate(n=Sum("count")).order_by())
    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    lags: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for provider_id, outcome, bucket, n in rows:
        if outcome in OUTCOMES:
            totals[provider_id][outcome] += n
        if outcome in LAGGED and bucket >= 0:
            lags[provider_id][bucket] += n
    return {
        pid: {"totals": totals[pid], "lag_p50_seconds": percentile(lags[pid], 0.5),
              "lag_p99_seconds": percentile(lags[pid], 0.99)}
        for pid in set(totals) | set(lags)
    }


def queue_depths() -> dict[str, Any]:
    """Messages waiting in cloudsync's Redis queues now (priority lists
    included), and how many all workers hold reserved (kombu's unacked
    set, every queue). Depths are None, with the error, if Redis does not answer."""
    out: dict[str, Any] = {"queues": [{"name": q, "depth": None} for q in names.QUEUES],
                           "reserved": None, "error": ""}
    client = redis.Redis.from_url(queueing.broker_url(), socket_connect_timeout=2,
                                  socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in names.QUEUES:
            for key in (queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))):
                pipe.llen(key)
        pipe.hlen(UNACKED)
        lengths = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return out
    finally:
        client.close()
    for i, entry in enumerate(out["queues"]):
        entry["depth"] = sum(lengths[i * 10:(i + 1) * 10])
    out["reserved"] = lengths[-1]
    return out


def inbox_backlog(provider_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """Events now queued, failed and dead (the dead letters) per provider,
    from the (provider, status) index."""
    qs = Event.objects.filter(status__in=BACKLOG)
    if provider_ids is not None:
        qs = qs.filter(cloudprovider_id__in=list(provider_ids))
    out: dict[int, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in BACKLOG})
    # COUNT(*): an index-only scan of the partial index (Event.Meta, "event_backlog")
    for provider_id, status, n in (qs.values_list("cloudprovider_id", "status")
                                   .annotate(n=Count("*")).order_by()):
        out[provider_id][status] = n
    return out


def _run_fields(run: SyncRun) -> dict[str, Any]:
    duration = None
    if run.finished_at and run.started_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    listed = sum(n for counts in (run.counts or {}).values() for outcome, n in counts.items()
                 if outcome != "deleted")
    return {
        "id": run.pk, "kind": run.kind, "status": run.status, "started_at": run.started_at,
        "finished_at": run.finished_at, "duration_seconds": duration, "objects_listed": listed,
        "drift_healed": run.drift_healed, "events_applied": run.events_applied,
        "event_coverage": run.event_coverage, "error": run.error[:500],
    }


_RUN_COLUMNS = ("pk", "cloudprovider_id", "kind", "status", "started_at", "finished_at", "counts",
                "drift_healed", "events_applied", "error")


def last_full_sync(provider: CloudProvider) -> dict[str, Any] | None:
    """The provider's latest full sync that ended (status, duration, objects
    listed, drift healed, coverage)."""
    run = (SyncRun.objects.filter(cloudprovider=provider, kind=RunKind.FULL)
           .exclude(status=RunStatus.RUNNING).order_by("-started_at", "-id")
           .only(*_RUN_COLUMNS).first())
    return _run_fields(run) if run else None


def running_run(provider: CloudProvider) -> dict[str, Any] | None:
    """The provider's run in progress, with its progress when the run
    records one (``SyncRun.progress``, where available)."""
    run = SyncRun.objects.filter(cloudprovider=provider, status=RunStatus.RUNNING).first()
    if run is None:
        return None
    progress = getattr(run, "progress", None)
    return {"id": run.pk, "kind": run.kind, "started_at": run.started_at,
            "progress": progress if isinstance(progress, dict) and progress else None}


def coverage_series(provider: CloudProvider, limit: int = COVERAGE_RUNS) -> list[dict[str, Any]]:
    """Event coverage of the provider's last ``limit`` measured full syncs, oldest first."""
    runs = list(
        SyncRun.objects.filter(cloudprovider=provider, kind=RunKind.FULL,
                               events_applied__isnull=False)
        .order_by("-started_at", "-id")
        .only("pk", "started_at", "coverage_since", "drift_healed", "events_applied")[:limit]
    )
    return [
        {"run": run.pk, "started_at": run.started_at, "since": run.coverage_since,
         "events_applied": run.events_applied, "drift_healed": run.drift_healed,
         "event_coverage": run.event_coverage}
        for run in reversed(runs)
    ]


def _provider_fields(provider: CloudProvider) -> dict[str, Any]:
    return {"id": provider.pk, "name": provider.name, "driver": provider.cloud_sync_driver,
            "enabled": provider.cloud_sync_enabled,
            "last_event_received_at": provider.last_event_received_at}


def provider_status(provider: CloudProvider, *, now: datetime | None = None,
                    step: int = 300) -> dict[str, Any]:
    """Every figure of one provider's status page."""
    now = now or timezone.now()
    return {
        "provider": _provider_fields(provider),
        "generated_at": now,
        "events": event_series([provider.pk], now=now, step=step),
        "queues": queue_depths(),
        "inbox": inbox_backlog([provider.pk])[provider.pk],
        "last_full_sync": last_full_sync(provider),
        "running": running_run(provider),
        "coverage": coverage_series(provider),
    }


def overview(*, now: datetime | None = None, step: int = 300) -> dict[str, Any]:
    """The figures of every provider side by side, and all events together."""
    now = now or timezone.now()
    providers = list(CloudProvider.objects.order_by("name"))
    per_provider = _totals_by_provider(now)
    backlog = inbox_backlog()
    empty = {"totals": dict.fromkeys(OUTCOMES, 0), "lag_p50_seconds": None,
             "lag_p99_seconds": None}
    last_runs = _last_full_syncs([p.pk for p in providers])
    rows = []
    for provider in providers:
        events = per_provider.get(provider.pk, empty)
        rows.append({
            **_provider_fields(provider),
            "events": events["totals"],
            "lag_p50_seconds": events["lag_p50_seconds"],
            "lag_p99_seconds": events["lag_p99_seconds"],
            "inbox": backlog[provider.pk],
            "last_full_sync": last_runs.get(provider.pk),
        })
    return {
        "generated_at": now,
        "events": event_series(None, now=now, step=step),
        "queues": queue_depths(),
        "providers": rows,
    }


def _last_full_syncs(provider_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each provider's latest ended full sync (one query, Postgres
    ``DISTINCT ON``; elsewhere one per provider)."""
    qs = (SyncRun.objects.filter(kind=RunKind.FULL, cloudprovider_id__in=provider_ids)
          .exclude(status=RunStatus.RUNNING).only(*_RUN_COLUMNS))
    if connections[qs.db].features.can_distinct_on_fields:
        runs = qs.order_by("cloudprovider_id", "-started_at", "-id").distinct("cloudprovider_id")
        return {run.cloudprovider_id: _run_fields(run) for run in runs}
    out = {}
    for pid in provider_ids:
        run = qs.filter(cloudprovider_id=pid).order_by("-started_at", "-id").first()
        if run is not None:
            out[pid] = _run_fields(run)
    return out
