"""Scratch rows of split full syncs (``sync.split``).

A split full sync lists its parts in several processes; each part records
the external ids it listed here, and the run's finish step decides
deletions once from their union. Rows live only while their run runs. On
Postgres the table is UNLOGGED (migration 0006): no WAL, lost on a crash,
which only fails or restarts the run that owned them.
"""

from __future__ import annotations

from django.db import models

__all__ = ["ListedId"]


class ListedId(models.Model):
    """One external id a part of a split run listed."""

    pk = models.CompositePrimaryKey("run_id", "kind", "external_id")
    run_id = models.BigIntegerField()  # no foreign key: an unlogged table, deleted with its run's end
    kind = models.CharField(max_length=16)
    external_id = models.CharField(max_length=255)

    class Meta:
        verbose_name = "listed id (split run scratch)"

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.kind} {self.external_id}"
