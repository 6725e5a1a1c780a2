"""Scratch rows: split full syncs' listed ids, listing digests.

**ListedId** (``sync.split``).

A split full sync lists its parts in several processes; each part records
the external ids it listed here, and the run's finish step decides
deletions once from their union. Rows live only while their run runs. The
table is logged (migration 0007): an unlogged table is emptied by crash
recovery, and ids lost there would become deletions; the finish step also
checks that every part's listed ids are all there (``sync.split.settle``).
"""

from __future__ import annotations

from django.db import models

__all__ = ["ListedId", "ListingDigest"]


class ListedId(models.Model):
    """One external id a part of a split run listed."""

    pk = models.CompositePrimaryKey("run_id", "kind", "external_id")
    run_id = models.BigIntegerField()  # no foreign key: scratch rows, deleted with their run's end
    kind = models.CharField(max_length=16)
    external_id = models.CharField(max_length=255)

    class Meta:
        verbose_name = "listed id (split run scratch)"

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.kind} {self.external_id}"


class ListingDigest(models.Model):
    """What the last full listing that left a row exactly as it listed it
    found (``sync.apply.digests``): valid while the row's physical version
    (Postgres ``xmin:ctid``) is the one recorded. A cache: the table is
    unlogged (migration 0010), and a lost digest only means one more
    comparison."""

    pk = models.CompositePrimaryKey("kind", "row_id")
    kind = models.CharField(max_length=16)
    row_id = models.BigIntegerField()  # no foreign key: a digest of a purged row is never read
    row_version = models.CharField(max_length=64)
    digest = models.CharField(max_length=32)

    class Meta:
        verbose_name = "listing digest (re-sync cache)"

    def __str__(self) -> str:
        return f"{self.kind} {self.row_id}: {self.digest}"
