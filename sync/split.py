"""Split full syncs: one run listed by several tasks in parallel.

A full sync of a large provider (``CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS``) is
listed in parts (``Driver.list_parts``: for OpenStack the catalog, servers,
ports and floating IPs), each by its own Celery task; a chord runs the
finish step once every part has completed (``sync.runs`` owns that
lifecycle, ``sync.queueing.send_chord`` the Celery side). Here:

* whether a run splits (``parts_for``);
* one part: list it, apply its upserts through ``reconcile.apply_part`` (the
  same chunked ``apply()`` as an unsplit run) and record the ids it listed
  in ``ListedId``, where the finish step, in another process, reads them;
* the finish: deletions decided once, from the union of the listed ids, by
  ``reconcile.settle_parts`` (the same rules and mass-delete guard as an
  unsplit run), and the scratch rows removed.

This module never writes a ``SyncRun``: ``sync.runs`` records outcomes.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils.dateparse import parse_datetime

from sync.apply.floors import Floors
from sync.changes import Kind, Source
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import Driver, Snapshot
from sync.models import ListedId, SyncRun
from sync.progress import Progress
from sync.reconcile import Reconciliation, apply_part, listing_floors, settle_parts

__all__ = ["ListedIdsLost", "Superseded", "clear", "clear_finished", "list_part", "parts_for", "previous_objects",
           "settle", "summary"]


class Superseded(Exception):
    """The part's run ended or was taken over while the part listed."""


def previous_objects(run: SyncRun) -> int | None:
    """Objects the provider's last succeeded full run counted (every kind and
    outcome of its ``counts``), or None if it never had one."""
    last = (
        SyncRun.objects.filter(cloudprovider_id=run.cloudprovider_id, kind=RunKind.FULL,
                               status=RunStatus.SUCCEEDED, started_at__lt=run.started_at)
        .order_by("-started_at").values_list("counts", flat=True).first()
    )
    if last is None:
        return None
    return sum(n for outcomes in (last or {}).values() for n in outcomes.values())


def parts_for(run: SyncRun, driver: Driver, config: Any) -> list[str]:
    """The parts ``run`` is split into, or [] to run it in one task: only full
    syncs, only drivers that declare parts, and only once the provider's
    previous succeeded full run counted ``CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS``
    objects or more (0 never splits)."""
    threshold = settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS
    if run.kind != RunKind.FULL or threshold <= 0:
        return []
    parts = driver.list_parts(config)
    if len(parts) < 2:
        return []
    previous = previous_objects(run)
    return parts if previous is not None and previous >= threshold else []


def _recorder(run_id: int, alive: Callable[[], bool]) -> Callable[[dict[Kind, list[str]]], None]:
    """Writes a chunk's listed ids (one statement per kind), after checking
    that the run still wants them."""

    def record(listed: dict[Kind, list[str]]) -> None:
        if not alive():
            raise Superseded(f"sync run #{run_id} ended or was taken over")
        for kind, ids in listed.items():
            if ids:
                _insert(run_id, kind.value, ids)

    return record


def _insert(run_id: int, kind: str, ids: list[str]) -> None:
    if connection.vendor != "postgresql":
        ListedId.objects.bulk_create(
            [ListedId(run_id=run_id, kind=kind, external_id=i) for i in ids], ignore_conflicts=True)
        return
    # One JSON parameter (quoted in C), not 1,000 text parameters.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_listedid (run_id, kind, external_id) "
            "SELECT %s, %s, jsonb_array_elements_text(%s::jsonb) ON CONFLICT DO NOTHING",
            [run_id, kind, json.dumps(ids)],
        )


def list_part(
    run: SyncRun, driver: Driver, part: str, alive: Callable[[], bool],
    announce: Callable[[Floors], None], progress: Progress | None = None,
) -> dict[str, Any]:
    """List one part of ``run`` and apply it; ``alive()`` (checked per chunk)
    says the run still wants it, else ``Superseded`` is raised; ``announce``
    gets the part's listing floor before anything is applied
    (``sync.apply.floors``). Returns the part's outcome as JSON for the
    finish step: its kinds and scopes, when its listing began, its floors,
    counts and drift."""
    began = time.monotonic()
    snapshot = driver.list_inventory(run.cloudprovider.client_config, part=part)
    if snapshot.started_at is None:
        snapshot.started_at = run.started_at
    floors = listing_floors(snapshot, snapshot.started_at)
    if floors:
        announce(floors)
    applied = apply_part(run.cloudprovider, snapshot, source=Source.FULL_SYNC, ref=str(run.pk),
                         record=_recorder(run.pk, alive), progress=progress)
    scopes = {kind.value: sorted(ids) for kind, ids in (snapshot.scopes or {}).items()}
    return {"part": part, "kinds": sorted(k.value for k in snapshot.kinds), "scopes": scopes,
            "started_at": snapshot.started_at.isoformat(), "floors": dict(floors.versions),
            **applied,
            "seconds": round(time.monotonic() - began, 3)}


def _union(parts: list[dict[str, Any]], fallback: datetime) -> Snapshot:
    """The parts' listings as one (empty) snapshot: every kind some part
    listed completely; a kind's scope is the union of its parts' scopes, or
    None (the whole provider) if one part listed it whole; the earliest
    start of a part's listing (nothing touched since is deleted)."""
    kinds: set[Kind] = set()
    scoped: dict[Kind, set[str]] = defaultdict(set)
    whole: set[Kind] = set()
    starts = []
    floors: dict[Kind, str] = {}
    for part in parts:
        floors.update({Kind(k): v for k, v in (part.get("floors") or {}).items()})
        scopes = part.get("scopes") or {}
        for value in part.get("kinds", ()):
            kind = Kind(value)
            kinds.add(kind)
            if value in scopes:
                scoped[kind].update(scopes[value])
            else:
                whole.add(kind)
        if part.get("started_at"):
            starts.append(parse_datetime(part["started_at"]))
    scopes_out = {k: frozenset(ids) for k, ids in scoped.items() if k not in whole}
    return Snapshot(changes=(), kinds=frozenset(kinds), scopes=scopes_out or None,
                    started_at=min(starts, default=fallback), floors=floors)


def _seen(run_id: int, kinds: Iterable[Kind]) -> dict[Kind, set[str]]:
    seen: dict[Kind, set[str]] = defaultdict(set)
    rows = ListedId.objects.filter(run_id=run_id, kind__in=[k.value for k in kinds])
    for kind, ext in rows.values_list("kind", "external_id").iterator(chunk_size=10_000):
        seen[Kind(kind)].add(ext)
    return seen


class ListedIdsLost(Exception):
    """Fewer listed ids are recorded than the parts listed."""


def _check_complete(parts: list[dict[str, Any]], seen: dict[Kind, set[str]]) -> None:
    """Every id a part listed must be in ``ListedId`` before anything is
    deleted from their union: a missing one would be deleted."""
    for part in parts:
        for kind, count in (part.get("listed") or {}).items():
            if len(seen.get(Kind(kind), ())) < count:
                raise ListedIdsLost(
                    f"part {part.get('part')} listed {count} {kind}(s) but only "
                    f"{len(seen.get(Kind(kind), ()))} are recorded; nothing deleted")


def settle(run: SyncRun, parts: list[dict[str, Any]]) -> tuple[Reconciliation, Floors]:
    """Every part of ``run`` completed: decide and apply deletions once, from
    the union of what they listed (``reconcile.settle_parts``). Also returns
    the listing floor of the whole run (the earliest part's start)."""
    listing = _union(parts, run.started_at)
    seen = _seen(run.pk, listing.kinds)
    _check_complete(parts, seen)
    result = settle_parts(run.cloudprovider, listing, seen, parts, source=Source.FULL_SYNC,
                          ref=str(run.pk))
    return result, listing_floors(listing, listing.started_at)


def summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """What a finished split run keeps of its parts (``SyncRun.parts``): each
    part's duration and objects, to see which part bounds the run."""
    return {p["part"]: {"seconds": p.get("seconds"),
                        "objects": sum(n for c in (p.get("counts") or {}).values()
                                       for n in c.values())}
            for p in parts if "part" in p}


def clear(run_id: int) -> None:
    """Drop a run's scratch rows."""
    ListedId.objects.filter(run_id=run_id).delete()


def clear_finished() -> int:
    """Drop scratch rows of runs no longer running (a part that wrote after
    its run ended, a run failed by an operator); the sweeper calls it."""
    running = SyncRun.objects.filter(status=RunStatus.RUNNING).values("pk")
    deleted, _ = ListedId.objects.exclude(run_id__in=running).delete()
    return deleted
