"""Retention: what the service stops keeping, and when (a beat task).

``purge()`` removes, in batches of ``CLOUDSYNC_PURGE_BATCH`` rows, each batch
its own short transaction (an ingest batch never waits on more than one):

* processed and ignored inbox events once both received and processed more
  than ``CLOUDSYNC_EVENT_RETENTION_DAYS`` ago. That is the dedup window: a
  duplicate of a message arriving within it finds the original and is
  dropped; one arriving later is a new event (applied again, harmlessly: apply
  is idempotent, and an old version loses to newer fields);
* failed and dead events after ``CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS``
  (replayable until then). Queued events (waiting, being processed, waiting
  for a retry) are never removed: every DELETE re-checks the status, so an
  event reopened by a replay meanwhile stays;
* history entries applied more than ``CLOUDSYNC_HISTORY_RETENTION_DAYS`` ago;
* the stored plans of runs finished more than ``CLOUDSYNC_PLAN_RETENTION_DAYS``
  ago (the run row stays, ``plan`` becomes NULL);
* tombstones older than ``CLOUDSYNC_TOMBSTONE_RETENTION_DAYS``, and never one
  newer than the start of the provider's last successful full listing or of
  a running one. The trade-off: a tombstone is what keeps a late event from
  bringing a deleted object back; an event delayed longer than the window
  recreates it, until the next full sync deletes it again. Ports first (with
  their address rows), then hosts no port row names any more, then flavors,
  images and projects no host row names: a tombstone something still refers
  to stays.

Each run is recorded as a ``PurgeRun`` (settings, cutoffs, counts removed).

On PostgreSQL the purge then rebuilds the inbox's indexes on id and
``received_at`` (``REINDEX INDEX CONCURRENTLY``: ingest and workers go on
writing) once the events removed since
the last rebuild reach ``CLOUDSYNC_INBOX_REINDEX_FRACTION`` of the inbox's
rows (and at least ``REINDEX_MIN_PURGED``). Deleting rows does not shrink a
B-tree: a leaf page is only freed once every entry on it is gone, and the
id and ``received_at`` indexes grow at their right end only, so a page of old
entries is never reused for new ones. Failed events (1 in 100 is enough) are
kept far longer than processed ones and leave a few entries on nearly every
old page, so without a rebuild those indexes grow by a day of pages each day
until the failed-event window ends. (Pages that do empty are recycled by a
later VACUUM only once no transaction on the whole server, any database, is
older than the delete: PostgreSQL 15 and older.) ``removed["inbox_reindex"]``
records the running count and whether this run rebuilt.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    CloudProvider,
    Event,
    HistoryEntry,
    ListingDigest,
    PurgeRun,
    SyncedModel,
    SyncRun,
)

__all__ = ["REINDEX_MIN_PURGED", "SETTINGS", "forget_provider_history", "last_purge", "purge",
           "retention_settings"]

log = logging.getLogger(__name__)

# The retention settings, in days, in the order the admin and the API show them.
SETTINGS = (
    "CLOUDSYNC_EVENT_RETENTION_DAYS",
    "CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS",
    "CLOUDSYNC_HISTORY_RETENTION_DAYS",
    "CLOUDSYNC_PLAN_RETENTION_DAYS",
    "CLOUDSYNC_TOMBSTONE_RETENTION_DAYS",
)
DONE = (Status.PROCESSED, Status.IGNORED)
FAILED = (Status.FAILED, Status.DEAD)
# Fewer events removed since the inbox's last index rebuild than this: no
# rebuild, whatever the fraction (a small inbox's bloat is not worth one).
REINDEX_MIN_PURGED = 100_000


def retention_settings() -> dict[str, Any]:
    """Each retention setting's value (days), the batch size and the schedule default."""
    out: dict[str, Any] = {name: getattr(settings, name) for name in SETTINGS}
    out["CLOUDSYNC_PURGE_BATCH"] = settings.CLOUDSYNC_PURGE_BATCH
    out["CLOUDSYNC_INBOX_REINDEX_FRACTION"] = settings.CLOUDSYNC_INBOX_REINDEX_FRACTION
    return out


def last_purge() -> PurgeRun | None:
    return PurgeRun.objects.order_by("-started_at", "-id").first()


class _Batches:
    """Counts the batches of one purge run."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0

    def delete(
        self, candidates: models.QuerySet, recheck: models.QuerySet, before: Any = None
    ) -> int:
        """Delete ``recheck`` rows among ``candidates``' pks, a batch at a
        time (``before(pks)`` runs first in the batch's transaction), until
        none is left; the DELETE repeats the conditions, so a row that
        changed since it was picked is kept."""
        total, done, last = 0, 0, None
        while True:
            picked = list(candidates.order_by().values_list("pk", flat=True)[: self.size])
            if not picked or (picked == last and not done):
                return total  # (nothing left, or the same rows again and none deletable)
            pks = picked
            with transaction.atomic():
                if before is not None:  # (on rows still matching, locked first, in pk
                    # order like apply, so two transactions never wait on each other)
                    pks = list(
                        recheck.filter(pk__any=pks)
                        .order_by("pk")
                        .select_for_update()
                        .values_list("pk", flat=True)
                    )
                    before(pks)
                done = recheck.filter(pk__any=pks)._raw_delete(recheck.db) if pks else 0
            self.count += 1
            total += done
            # Fewer candidates than a batch: that was the last one. (Not fewer
            # deleted: a row the re-check kept does not mean none is left.)
            if len(picked) < self.size:
                return total
            last = picked


def _days(name: str) -> timedelta:
    return timedelta(days=float(getattr(settings, name)))


def purge(now: datetime | None = None, *, batch: int | None = None) -> PurgeRun:
    """Remove what is past each retention window (see module doc); returns
    the recorded ``PurgeRun``. ``now``: the time windows count back from."""
    now = now or timezone.now()
    batches = _Batches(batch or settings.CLOUDSYNC_PURGE_BATCH)
    cutoffs = {name: now - _days(name) for name in SETTINGS}
    run = PurgeRun.objects.create(
        started_at=timezone.now(),
        settings={
            **retention_settings(),
            "now": now.isoformat(),
            "cutoffs": {k: v.isoformat() for k, v in cutoffs.items()},
        },
    )
    removed: dict[str, Any] = {}
    try:
        removed["events"] = _events(batches, DONE, cutoffs["CLOUDSYNC_EVENT_RETENTION_DAYS"])
        removed["failed_events"] = _events(
            batches, FAILED, cutoffs["CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS"]
        )
        cutoff = cutoffs["CLOUDSYNC_HISTORY_RETENTION_DAYS"]
        old = HistoryEntry.objects.filter(applied_at__lt=cutoff)
        removed["history"] = batches.delete(old, old)
        removed["plans"] = _plans(batches, cutoffs["CLOUDSYNC_PLAN_RETENTION_DAYS"])
        removed["tombstones"] = _tombstones(batches, cutoffs["CLOUDSYNC_TOMBSTONE_RETENTION_DAYS"])
        removed["inbox_reindex"] = _reindex_inbox(removed["events"] + removed["failed_events"])
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        run.removed, run.batches, run.finished_at = removed, batches.count, timezone.now()
        run.save(update_fields=["removed", "batches", "finished_at", "error"])
    log.info("retention purge #%s removed %s in %d batches", run.pk, removed, batches.count)
    return run


def _events(batches: _Batches, statuses: tuple[str, ...], cutoff: datetime) -> int:
    """Events in ``statuses`` received and processed before ``cutoff``."""
    old = Event.objects.filter(status__in=statuses, received_at__lt=cutoff).filter(
        Q(processed_at__lt=cutoff) | Q(processed_at__isnull=True)
    )
    return batches.delete(old, old)


def _plans(batches: _Batches, cutoff: datetime) -> int:
    total = 0
    old = SyncRun.objects.filter(plan__isnull=False, finished_at__lt=cutoff).exclude(
        status=RunStatus.RUNNING
    )
    while pks := list(old.order_by().values_list("pk", flat=True)[: batches.size]):
        with transaction.atomic():
            done = old.filter(pk__any=pks).update(plan=None)
        batches.count += 1
        total += done
        if done == 0 or len(pks) < batches.size:
            break
    return total


def _tombstone_cutoff(provider_id: int, cutoff: datetime) -> datetime:
    """Never a tombstone newer than the start of the provider's last
    successful full listing, or of a listing still running: that listing may
    have listed the object before it was deleted, and must find it deleted."""
    runs = SyncRun.objects.filter(
        cloudprovider_id=provider_id, kind__in=(RunKind.FULL, RunKind.SNAPSHOT)
    )
    running = runs.filter(status=RunStatus.RUNNING).order_by("started_at").first()
    last = (
        runs.filter(status__in=(RunStatus.SUCCEEDED, RunStatus.NEEDS_APPROVAL, RunStatus.APPLIED))
        .order_by("-started_at")
        .first()
    )
    for run in (running, last):
        if run is not None and run.started_at < cutoff:
            cutoff = run.started_at
    return cutoff


def _unreferenced(model: type[SyncedModel]) -> Q:
    """No row points at this one (a tombstone still named stays)."""
    if model is CloudPort:
        return Q()
    if model is CloudHost:
        return ~Q(Exists(CloudPort.all_objects.filter(host=OuterRef("pk")))) & ~Q(
            Exists(CloudPort.all_objects.filter(claimed_host=OuterRef("pk")))
        )
    attr = {CloudFlavor: "cloudflavor", CloudImage: "image", CloudProject: "project"}[model]
    return ~Q(Exists(CloudHost.all_objects.filter(**{attr: OuterRef("pk")})))


def _tombstones(batches: _Batches, cutoff: datetime) -> dict[str, int]:
    """Tombstones past the window, referrers first (see module doc)."""
    out: dict[str, int] = {}
    order = (
        (CloudPort, "host_ip"),
        (CloudHost, "host"),
        (CloudFlavor, "flavor"),
        (CloudImage, "image"),
        (CloudProject, "project"),
    )
    providers = list(CloudProvider.objects.values_list("pk", flat=True))
    for model, name in order:
        total = 0
        for provider_id in providers:
            until = _tombstone_cutoff(provider_id, cutoff)
            old = model.all_objects.filter(
                cloudprovider_id=provider_id,
                deleted_at__isnull=False,
                deleted_at__lt=until,
            ).filter(_unreferenced(model))
            total += batches.delete(old, old, before=_dependents(model, name))
        out[name] = total
    return out


def _dependents(model: type[SyncedModel], kind: str) -> Any:
    """What goes first with a batch of tombstones: the address rows a deleted
    port or host still has, and the rows' listing digests (a cache,
    ``sync.apply.digests``)."""
    db = CloudHostIP.objects.db
    column = {CloudPort: "port_id", CloudHost: "host_id"}.get(model)

    def before(pks: list[int]) -> None:
        if column:
            CloudHostIP.objects.filter(**{f"{column}__any": pks})._raw_delete(db)
        ListingDigest.objects.filter(kind=kind, row_id__any=pks)._raw_delete(db)

    return before


def _reindex_inbox(purged: int) -> dict[str, Any]:
    """Rebuild the inbox's indexes once enough was purged since the last
    rebuild (see module doc): ``{"purged_since": n, "rebuilt": bool, ...}``.
    PostgreSQL only, and never inside a transaction (REINDEX CONCURRENTLY
    cannot run in one): then only the count goes on."""
    previous = (
        PurgeRun.objects.filter(removed__has_key="inbox_reindex")
        .order_by("-started_at", "-id")
        .first()
    )
    since = purged + (previous.removed["inbox_reindex"].get("purged_since", 0) if previous else 0)
    out: dict[str, Any] = {"purged_since": since, "rebuilt": False}
    fraction = settings.CLOUDSYNC_INBOX_REINDEX_FRACTION
    connection = connections[Event.objects.db]
    if (
        fraction <= 0
        or since < REINDEX_MIN_PURGED
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
    ):
        return out
    table = connection.ops.quote_name(Event._meta.db_table)
    with connection.cursor() as cursor:
        # The planner's row estimate (kept by VACUUM/ANALYZE); counted if never set.
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (rows,) = cursor.fetchone()
        if rows < 0:
            rows = Event.objects.count()
        if since < fraction * rows:
            return out
        names = _growing_indexes(cursor, connection)
        start = time.monotonic()
        try:
            for name in names:
                cursor.execute(f"REINDEX INDEX CONCURRENTLY {connection.ops.quote_name(name)}")
        except DatabaseError as exc:
            log.warning("retention: rebuilding the inbox's indexes failed: %s", exc)
            out["error"] = f"{type(exc).__name__}: {exc}"[:500]
            _drop_invalid_copies(cursor, table)
            return out
    out.update(
        purged_since=0, rebuilt=True, indexes=names, seconds=round(time.monotonic() - start, 1)
    )
    log.info("retention: rebuilt the inbox's indexes in %.1f s", out["seconds"])
    return out


def _growing_indexes(cursor: Any, connection: Any) -> list[str]:
    """The inbox's indexes led by a column that only grows (id,
    received_at): new entries go to their right end only, so their old pages
    are never reused. The others (dedup key: a hash; status, type) take new
    entries all over, and refill the room the purge left; a packed rebuild
    would only make them split again."""
    constraints = connection.introspection.get_constraints(cursor, Event._meta.db_table)
    return sorted(
        name
        for name, c in constraints.items()
        if (c["index"] or c["primary_key"]) and c["columns"][:1] in (["id"], ["received_at"])
    )


def _drop_invalid_copies(cursor: Any, table: str) -> None:
    """A REINDEX CONCURRENTLY that failed leaves an invalid ``*_ccnew``
    (or ``*_ccold``) index behind, still updated by every write: drop it."""
    try:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = %s::regclass AND NOT indisvalid",
            [table],
        )
        for (name,) in cursor.fetchall():
            if re.search(r"_cc(new|old)[0-9]*\"?$", name):
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    except DatabaseError as exc:  # (the connection may be gone: next time)
        log.warning("retention: dropping invalid index copies failed: %s", exc)


def forget_provider_history(sender: Any, instance: Any, using: str | None = None,
                            **_: Any) -> None:
    """A deleted provider's history, deleted again once the deletion has
    committed (``post_delete`` of ``CloudProvider``). The history table has
    no constraint on its provider (each insert would pay a trigger), so an
    ``apply()`` that committed while Django's collector was deleting the
    provider's rows leaves its entries behind; none can commit after the
    provider is gone (the inventory rows' own constraints refuse them)."""
    pk = instance.pk

    def forget() -> None:
        HistoryEntry.objects.filter(cloudprovider_id=pk)._raw_delete(using or "default")

    # (robust: the provider is deleted already; a failed clean-up is logged,
    # its entries wait for the history retention window)
    transaction.on_commit(forget, using=using, robust=True)
