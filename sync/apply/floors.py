"""Listing floors: what a complete listing vouches for without writing it.

Some objects carry no update time of their own (Nova flavors, Keystone
projects, every AWS object): a listing stamps them with the time it started,
and used to rewrite every row it listed just to record that newer version,
so that an event older than the listing (a state the listing already saw)
could not overwrite what it found. A re-sync that changed nothing rewrote
the whole provider.

Instead the listing records its *floor* once, on the provider: per kind, the
version it stamps (``Snapshot.floors``) and when it started. Every row that
existed before the listing started was seen by it (or deleted by it), so
each of its fields counts as at least that new: ``effective version =
max(field version, floor)``. The listing itself writes a row only when a
value differs; an unchanged row keeps its older versions, and the floor
does what the rewrite did.

The provider's ``listing_floors`` holds ``{"listed": floor}``, the last
listing that completed (succeeded or held its deletions back), and, while a
listing runs, ``{"pending": floor + run id}``: events older than a pending
floor wait until the run ends (``sync.ingest``), since the listing may
already have passed their object, found it unchanged and not written it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections

from sync.changes import Change, Kind, Op
from sync.models import CloudProvider

__all__ = ["NO_FLOORS", "Floors", "lock_for_change", "read"]


@dataclass(frozen=True)
class Floors:
    """Per kind, the version a complete listing that began at ``started_at``
    vouches for on every row that existed before it."""

    started_at: datetime | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    run: int | None = None  # the run of a pending floor
    # Live rows the listing did not list but kept: changed after it began
    # (deletion safety), or deletions the mass-delete guard held back.
    unseen: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def of(self, kind: Kind, row: Any) -> str:
        """The floor of an inventory row of ``kind`` ("" if none): only a
        live row that existed when the listing began, and that the listing
        listed, was seen by it. (A tombstone's fields are late news kept by
        version alone.)"""
        version = self.versions.get(kind.value, "")
        if not version or self.started_at is None or row.deleted_at is not None:
            return ""
        if row.created_at is None or row.created_at >= self.started_at:
            return ""
        if row.external_id in self.unseen.get(kind.value, ()):
            return ""
        return version

    def below(self, change: Change) -> bool:
        """An upsert older than this floor for its kind (a delete always wins)."""
        version = self.versions.get(change.kind.value, "")
        return change.op == Op.UPSERT and bool(version) and change.version < version

    def __bool__(self) -> bool:
        return bool(self.versions) and self.started_at is not None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "versions": dict(self.versions),
        }
        if self.run is not None:
            out["run"] = self.run
        if self.unseen:
            out["unseen"] = {kind: sorted(ids) for kind, ids in self.unseen.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Floors:
        if not data or not data.get("started_at"):
            return NO_FLOORS
        return cls(
            started_at=datetime.fromisoformat(data["started_at"]),
            versions=dict(data.get("versions") or {}),
            run=data.get("run"),
            unseen={kind: frozenset(ids) for kind, ids in (data.get("unseen") or {}).items()},
        )

    @classmethod
    def of_listing(
        cls, started_at: datetime, versions: Mapping[Kind, str] | None, run: int | None = None
    ) -> Floors:
        return cls(started_at, {k.value: v for k, v in (versions or {}).items()}, run)

    def completed(self, unseen: Mapping[Kind, set[str]]) -> Floors:
        """This (pending) floor once its listing completed, with the live
        rows of its kinds it did not list."""
        return Floors(self.started_at, self.versions, unseen={
            kind.value: frozenset(ids) for kind, ids in unseen.items()
            if kind.value in self.versions and ids
        })


NO_FLOORS = Floors()


# Advisory lock (class, provider pk) between ingest batches reading the
# floors (shared) and a run changing them (exclusive).
_LOCK_CLASS = 7301


def read(provider: CloudProvider) -> tuple[Floors, Floors]:
    """The provider's listed and pending floors, read now. On Postgres,
    inside the caller's transaction, under a shared advisory lock held until
    it ends: a run changes the floors (``lock_for_change``) either before
    this read, which then sees the change, or after the caller committed —
    a listing then finds what the caller wrote and compares its own listing
    with that. (An advisory lock, not a row lock: a pushed snapshot locks
    inventory rows and then updates the provider row in one transaction.)"""
    connection = connections[CloudProvider.objects.db]
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)",
                           [_LOCK_CLASS, provider.pk])
    data = CloudProvider.objects.filter(pk=provider.pk).values_list(
        "listing_floors", flat=True).first() or {}
    return Floors.from_json(data.get("listed")), Floors.from_json(data.get("pending"))


def lock_for_change(provider_id: int) -> None:
    """Inside a transaction that changes the provider's floors: wait for the
    ingest batches that read them to commit (Postgres; SQLite has one writer)."""
    connection = connections[CloudProvider.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, provider_id])
