"""Snapshot vs database: heal drift through the same ``apply()`` as events.

A full sync streams the driver's snapshot through ``apply`` in chunks
(upserts are never destructive, so they are applied as they come and memory
stays bounded). Deletions are decided only once the listing completed:

* only kinds the snapshot says it listed completely, inside its scopes;
* never an object changed at or after the listing started (an event may
  have created it while we were listing);
* the mass-delete guard: more than ``CLOUDSYNC_MASS_DELETE_RATIO`` of a kind
  (and more than ``CLOUDSYNC_MASS_DELETE_MIN_COUNT`` objects) holds the
  deletions back as a stored plan that an operator can apply.

A dry run applies nothing: each chunk is applied inside a transaction that is
rolled back, which yields the exact field-by-field plan.

This module never reads or writes a ``SyncRun``: it returns what it did (a
``Reconciliation``) and ``sync.runs`` records it.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction

from sync.apply import MODEL_FOR_KIND, ApplyResult, Cause, Floors, Outcome, apply, bulk
from sync.changes import Change, Kind, Op, Source, make_version
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import Snapshot
from sync.models import CloudProvider
from sync.progress import Progress
from sync.table_stats import Growth

__all__ = ["PlanResult", "Reconciliation", "apply_part", "apply_plan", "change_to_plan",
           "listing_floors", "plan_to_change", "reconcile", "settle_parts"]

log = logging.getLogger(__name__)

CHUNK = 1000
DRIFT_SAMPLE = 50  # ids kept per kind and outcome in SyncRun.drift


class _Rollback(Exception):
    pass


def _chunks(changes: Iterable[Change], size: int) -> Iterator[list[Change]]:
    iterator = iter(changes)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def change_to_plan(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind.value,
        "op": change.op.value,
        "external_id": change.external_id,
        "fields": dict(change.fields),
        "version": change.version,
    }


def plan_to_change(item: dict[str, Any], source: Source, source_ref: str) -> Change:
    return Change(
        kind=item["kind"], op=item["op"], external_id=item["external_id"],
        fields=item.get("fields") or {}, version=item.get("version", ""),
        source=source, source_ref=source_ref,
    )


def _restamp(changes: Iterable[Change], source: Source, ref: str) -> Iterator[Change]:
    for c in changes:
        yield c if c.source == source and c.source_ref == ref else c.stamped(source, ref)


def _apply_chunk(
    provider: CloudProvider, chunk: list[Change], *, dry_run: bool, listed_at: Any,
    floors: Floors, cause: Cause | None = None,
) -> ApplyResult:
    # A listing without floors of its own (a catch-up, a pushed snapshot)
    # counts from the provider's last one.
    floors_or_last = floors if floors else None
    if not dry_run:  # diffs feed only a dry run's plan: not computed otherwise
        return apply(provider, chunk, listed_at=listed_at, floors=floors_or_last, cause=cause)
    holder: list[ApplyResult] = []
    try:
        with transaction.atomic():  # (rolled back: no history either)
            holder.append(apply(provider, chunk, record_diffs=True, listed_at=listed_at,
                                floors=floors_or_last, record_history=False))
            raise _Rollback
    except _Rollback:
        pass
    return holder[0]


class _Drift:
    """Counts what a run healed: objects created, changed or deleted by it."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.samples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.total = 0

    def add(self, result: ApplyResult) -> None:
        for change, outcome in result.outcomes:
            if outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.DELETED):
                kind = change.kind.value
                self.counts[kind][outcome] += 1
                self.total += 1
                sample = self.samples[kind][outcome]
                if len(sample) < DRIFT_SAMPLE:
                    sample.append(change.external_id)

    def absorb(self, other: dict[str, Any]) -> None:
        """Add another run part's ``as_dict()``."""
        for kind, entry in other.items():
            for outcome, n in entry.get("counts", {}).items():
                self.counts[kind][outcome] += n
                self.total += n
            for outcome, ids in entry.get("sample", {}).items():
                sample = self.samples[kind][outcome]
                sample.extend(ids[: max(DRIFT_SAMPLE - len(sample), 0)])

    def as_dict(self) -> dict[str, Any]:
        return {
            kind: {"counts": dict(counts), "sample": dict(self.samples[kind])}
            for kind, counts in self.counts.items()
        }


@dataclass
class Reconciliation:
    """What a reconciliation did (or, for a dry run, would do)."""

    status: str  # succeeded, planned (dry run) or needs_approval (mass-delete guard)
    counts: dict[str, dict[str, int]]
    drift_healed: int
    drift: dict[str, Any]
    plan: list[dict[str, Any]] | None
    error: str
    # Live rows of the listing's floor kinds it did not list but kept
    # (changed since it began, or deletions held back): not vouched for.
    unseen: dict[Kind, set[str]] = field(default_factory=dict)


def reconcile(
    provider: CloudProvider,
    snapshot: Snapshot,
    *,
    source: Source,
    ref: str,
    started_at: datetime,
    dry_run: bool = False,
    cause: Cause | None = None,
    progress: Progress | None = None,
) -> Reconciliation:
    """Heal the provider's inventory from a complete snapshot (see module doc).
    ``source``/``ref`` stamp the changes (the run's kind and id);
    ``started_at`` is when the listing began (the run's start if the
    snapshot does not say); ``cause``: the run, for the objects' history
    (by default read from ``source``/``ref``); ``progress`` is told of each
    chunk listed and applied, and when the listing ended."""
    started = snapshot.started_at or started_at
    seen: dict[Kind, set[str]] = defaultdict(set)
    totals = ApplyResult()
    drift = _Drift()
    plan: list[dict[str, Any]] = []

    def tracked(changes: Iterable[Change]) -> Iterator[Change]:
        for change in changes:
            if change.op == Op.UPSERT:
                seen[change.kind].add(change.external_id)
            yield change

    floors = listing_floors(snapshot, started)
    growth = Growth()
    with _vouching(provider, floors if not dry_run else Floors()) as applied:
        for chunk in _chunks(_restamp(tracked(snapshot.changes), source, ref), CHUNK):
            if progress is not None:
                progress.listed(chunk)
            result = _apply_chunk(provider, chunk, dry_run=dry_run,
                                  listed_at=snapshot.started_at, floors=floors, cause=cause)
            applied(chunk)
            if progress is not None:
                progress.applied(chunk)
            drift.add(result)
            if dry_run:
                plan += _planned(chunk, result)
            else:
                growth.after(result)
            result.outcomes.clear()
            totals.merge(result)

    if progress is not None:
        progress.set_phase("finishing")
    return _settle(provider, snapshot, seen, started, source, ref, totals, drift, plan,
                   dry_run=dry_run, cause=cause)


def _settle(
    provider: CloudProvider,
    snapshot: Snapshot,
    seen: dict[Kind, set[str]],
    started: Any,
    source: Source,
    ref: str,
    totals: ApplyResult,
    drift: _Drift,
    plan: list[dict[str, Any]],
    *,
    dry_run: bool,
    cause: Cause | None = None,
) -> Reconciliation:
    """After a complete listing: decide deletions (``_deletions``), apply them
    unless the guard trips (or a dry run), and say what the run did."""
    floors = listing_floors(snapshot, started)
    deletes = _deletions(provider, snapshot, seen, started, source, ref)
    tripped = _guard(provider, snapshot, deletes)
    unseen = _kept_unseen(provider, floors, seen, started) if floors and not dry_run else {}
    if tripped:
        for change in deletes:
            if change.kind.value in floors.versions:
                unseen.setdefault(change.kind, set()).add(change.external_id)
    if dry_run or tripped:
        plan += [change_to_plan(c) | {"diff": {}} for c in deletes]
        status = RunStatus.PLANNED if dry_run else RunStatus.NEEDS_APPROVAL
        error = "" if dry_run else tripped
    else:
        for chunk in _chunks(deletes, CHUNK):
            result = apply(provider, chunk, cause=cause)
            drift.add(result)
            result.outcomes.clear()
            totals.merge(result)
        status, error = RunStatus.SUCCEEDED, ""
    return Reconciliation(
        status=status, counts=totals.as_dict(),
        drift_healed=0 if status == RunStatus.PLANNED else drift.total, drift=drift.as_dict(),
        plan=plan if (dry_run or tripped) else None, error=error, unseen=unseen,
    )


@contextmanager
def _vouching(
    provider: CloudProvider, floors: Floors
) -> Iterator[Callable[[list[Change]], None]]:
    """Around a listing's chunks: the caller reports each applied chunk. If
    the listing fails part-way, the rows of floor kinds it applied get its
    floor written into their versions (what every listing did before
    floors): no completed listing will vouch for them, yet they show what
    it saw, and an older event must not overwrite that."""
    applied: dict[Kind, set[str]] = defaultdict(set)

    def report(chunk: list[Change]) -> None:
        for change in chunk:
            if change.op == Op.UPSERT and change.kind.value in floors.versions:
                applied[change.kind].add(change.external_id)

    try:
        yield report
    except BaseException:
        if floors and applied:
            try:
                _restamp_applied(provider, floors, applied)
            except Exception:  # the database may be what failed: the next listing heals
                log.exception("could not record what a failed listing of %s saw", provider)
        raise


def _restamp_applied(
    provider: CloudProvider, floors: Floors, applied: dict[Kind, set[str]]
) -> None:
    for kind, ids in applied.items():
        version = floors.versions[kind.value]
        model = MODEL_FOR_KIND[kind]
        idf = model.external_id_field
        for batch in _chunks(sorted(ids), CHUNK):
            with transaction.atomic():
                qs = model.all_objects.filter(
                    cloudprovider=provider, deleted_at__isnull=True,
                    created_at__lt=floors.started_at, **{f"{idf}__any": batch},
                ).only("pk", "field_versions", "source_version")
                rows = list(bulk.locked(qs))
                for row in rows:
                    row.field_versions = {
                        attr: max(v, version) if v else v
                        for attr, v in (row.field_versions or {}).items()
                    }
                    row.source_version = max(row.source_version, version)
                bulk.bulk_update(model, rows, ["field_versions", "source_version"])


def listing_floors(snapshot: Snapshot, started: datetime) -> Floors:
    """What ``snapshot`` vouches for (``sync.apply.floors``): its floors of
    the kinds it listed completely, whole-provider."""
    scopes = snapshot.scopes or {}
    return Floors.of_listing(started, {
        kind: version for kind, version in (snapshot.floors or {}).items()
        if kind in snapshot.kinds and scopes.get(kind) is None
    })


# -- split full syncs (sync/split.py) -----------------------------------------
# A split run lists its parts in several processes: each part streams its
# changes through ``apply_part`` (the same chunked apply as ``reconcile``)
# and hands the ids it listed to ``record``; once every part completed,
# ``settle_parts`` decides deletions from their union, through ``_settle``:
# the same rules, guard and outcome as an unsplit run.


def apply_part(
    provider: CloudProvider,
    snapshot: Snapshot,
    *,
    source: Source,
    ref: str,
    record: Callable[[dict[Kind, list[str]]], None],
    cause: Cause | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Apply one part's listing in chunks; ``record`` gets each chunk's listed
    ids per kind (before the chunk is applied). Returns what it did, as JSON:
    ``counts`` and ``drift`` (merged by ``settle_parts``), and how many
    distinct ids of each kind it listed (``listed``)."""
    totals, drift = ApplyResult(), _Drift()
    floors = listing_floors(snapshot, snapshot.started_at or datetime.now(UTC))
    seen: dict[Kind, set[str]] = defaultdict(set)
    growth = Growth()
    with _vouching(provider, floors) as applied:
        for chunk in _chunks(_restamp(snapshot.changes, source, ref), CHUNK):
            listed: dict[Kind, list[str]] = defaultdict(list)
            for change in chunk:
                if change.op == Op.UPSERT:
                    listed[change.kind].append(change.external_id)
                    seen[change.kind].add(change.external_id)
            record(listed)
            if progress is not None:
                progress.listed(chunk)
            result = _apply_chunk(provider, chunk, dry_run=False, listed_at=snapshot.started_at,
                                  floors=floors, cause=cause)
            applied(chunk)
            if progress is not None:
                progress.applied(chunk)
            drift.add(result)
            growth.after(result)
            result.outcomes.clear()
            totals.merge(result)
    if progress is not None:
        progress.set_phase("finishing")
    return {"counts": totals.as_dict(), "drift": drift.as_dict(),
            "listed": {kind.value: len(ids) for kind, ids in seen.items()}}


def settle_parts(
    provider: CloudProvider,
    listing: Snapshot,
    seen: dict[Kind, set[str]],
    parts: Iterable[dict[str, Any]],
    *,
    source: Source,
    ref: str,
    cause: Cause | None = None,
) -> Reconciliation:
    """Deletions of a split run, decided once: ``listing`` carries the union
    of the parts' kinds and scopes and the earliest start of their listings,
    ``seen`` the union of their listed ids, ``parts`` what ``apply_part``
    returned for each."""
    totals, drift = ApplyResult(), _Drift()
    for part in parts:
        for kind, counts in (part.get("counts") or {}).items():
            totals.counts[kind].update(counts)
        drift.absorb(part.get("drift") or {})
    return _settle(provider, listing, seen, listing.started_at, source, ref, totals, drift, [],
                   dry_run=False, cause=cause)


def _planned(chunk: list[Change], result: ApplyResult) -> list[dict[str, Any]]:
    """Plan entries for the changes that would do something."""
    out = []
    diffs = result.diffs or {}
    for change, outcome in result.outcomes:
        if outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.DELETED):
            diff = diffs.get(change.kind.value, {}).get(change.external_id, {})
            out.append(change_to_plan(change) | {"outcome": outcome, "diff": diff})
    return out


def _deletions(
    provider: CloudProvider,
    snapshot: Snapshot,
    seen: dict[Kind, set[str]],
    started: Any,
    source: Source,
    ref: str,
) -> list[Change]:
    """Live objects of listed kinds, inside the listed scope, not listed, and
    not touched since the listing began."""
    cutoff = make_version(started)
    version = make_version(started, started)
    out: list[Change] = []
    for kind in sorted(snapshot.kinds):
        model = MODEL_FOR_KIND[kind]
        idf = model.external_id_field
        qs = model.objects.filter(cloudprovider=provider).exclude(source_version__gte=cutoff)
        qs = qs.exclude(last_event_at__gte=started)
        scope = (snapshot.scopes or {}).get(kind)
        if scope is not None:
            qs = qs.filter(**_scope_filter(kind, scope))
        for ext in qs.values_list(idf, flat=True).iterator(chunk_size=5000):
            if ext not in seen[kind]:
                out.append(Change(kind, Op.DELETE, ext, {}, version, source, ref))
    return out


def _kept_unseen(
    provider: CloudProvider, floors: Floors, seen: dict[Kind, set[str]], started: Any
) -> dict[Kind, set[str]]:
    """Live rows of the floor kinds that existed when the listing began, were
    not listed, and are kept because something changed them since (the
    deletion safety of ``_deletions``)."""
    cutoff = make_version(started)
    out: dict[Kind, set[str]] = {}
    for name in floors.versions:
        kind = Kind(name)
        model = MODEL_FOR_KIND[kind]
        idf = model.external_id_field
        qs = model.objects.filter(cloudprovider=provider, created_at__lt=started).filter(
            models.Q(source_version__gte=cutoff) | models.Q(last_event_at__gte=started)
        )
        ids = {ext for ext in qs.values_list(idf, flat=True) if ext not in seen[kind]}
        if ids:
            out[kind] = ids
    return out


def _scope_filter(kind: Kind, scope: frozenset[str]) -> dict[str, Any]:
    if kind == Kind.PROJECT:
        return {"project_id__in": list(scope)}
    if kind == Kind.HOST:
        return {"project__project_id__in": list(scope)}
    if kind == Kind.HOST_IP:
        return {"host__project__project_id__in": list(scope)}
    return {}


def _guard(provider: CloudProvider, snapshot: Snapshot, deletes: list[Change]) -> str:
    """A reason when deletions exceed the configured share of a kind, else ""."""
    ratio = settings.CLOUDSYNC_MASS_DELETE_RATIO
    minimum = settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT
    per_kind: dict[Kind, int] = defaultdict(int)
    for change in deletes:
        per_kind[change.kind] += 1
    reasons = []
    for kind, count in sorted(per_kind.items()):
        total = MODEL_FOR_KIND[kind].objects.filter(cloudprovider=provider).count()
        if count > minimum and count > ratio * total:
            reasons.append(f"{count} of {total} {kind.value}s")
    if not reasons:
        return ""
    return (
        "mass-delete guard: the run would delete " + ", ".join(reasons)
        + f" (more than {ratio:.0%}); deletions held back until an operator applies the plan"
    )


@dataclass
class PlanResult:
    """What applying a stored plan did."""

    counts: dict[str, dict[str, int]]
    drift_healed: int


def apply_plan(
    provider: CloudProvider,
    plan: list[dict[str, Any]],
    *,
    ref: str,
    started_at: datetime,
    listed_at: datetime | None,
    cause: Cause | None = None,
) -> PlanResult:
    """Apply a stored plan (dry run or held-back deletions) through apply();
    deletions of objects seen or changed since ``started_at`` are dropped.
    ``listed_at``: when the plan's listing began (None: resurrect nothing)."""
    changes = _still_valid(provider, started_at,
                           [plan_to_change(item, Source.FULL_SYNC, ref) for item in plan])
    totals, drift = ApplyResult(), _Drift()
    for chunk in _chunks(changes, CHUNK):
        result = apply(provider, chunk, listed_at=listed_at, cause=cause)
        drift.add(result)
        result.outcomes.clear()
        totals.merge(result)
    return PlanResult(counts=totals.as_dict(), drift_healed=drift.total)


def _still_valid(
    provider: CloudProvider, started_at: datetime, changes: list[Change]
) -> list[Change]:
    """Drop planned deletions of objects seen or changed after the listing
    (an event, a catch-up, another sync), as ``_deletions`` would."""
    deletes = [c for c in changes if c.op == Op.DELETE]
    if not deletes:
        return changes
    touched: set[tuple[Kind, str]] = set()
    for kind in {c.kind for c in deletes}:
        model = MODEL_FOR_KIND[kind]
        idf = model.external_id_field
        ids = [c.external_id for c in deletes if c.kind == kind]
        touched.update(
            (kind, ext)
            for ext in model.all_objects.filter(
                models.Q(last_event_at__gte=started_at)
                | models.Q(last_seen_at__gte=started_at)
                | models.Q(source_version__gte=make_version(started_at)),
                cloudprovider=provider,
                **{f"{idf}__in": ids},
            ).values_list(idf, flat=True)
        )
    return [c for c in changes if c.op != Op.DELETE or (c.kind, c.external_id) not in touched]
