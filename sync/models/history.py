"""Object history (written by ``sync.apply`` only) and the retention purge's log.

A ``HistoryEntry`` is one change that altered one inventory object: when it
was applied, each field before → after, and its cause (an inbox event, a
sync run, a plan an operator applied). Entries are inserted in bulk by the
apply core in the transaction of the change (``sync.apply.history``); a
per-model signal library would not see those bulk writes.

Causes are kept by id without database constraints: inbox events are purged
long before history is (``sync.retention``), so an entry keeps the event's
type and occurrence time itself, and its object's kind and external id (a
purged tombstone leaves its history readable).
"""

from __future__ import annotations

from django.db import models

from sync.choices import HistoryActionChoices, HistoryCauseChoices

__all__ = ["DELETING", "HistoryEntry", "PurgeRun"]

# Entries that deleted, hid or brought back their object (sync.history_reads).
DELETING = models.Q(action="deleted") | models.Q(changes__has_key="deleted_at")


class HistoryEntry(models.Model):
    """One change that altered one inventory object."""

    cloudprovider = models.ForeignKey(
        "sync.CloudProvider",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # (history_provider below leads with it)
        # No database constraint: its check is a trigger per inserted row,
        # as much as the insert itself; deleting a provider still deletes
        # its history (Django's collector, through history_provider).
        db_constraint=False,
    )
    kind = models.CharField(max_length=16)  # sync.changes.Kind value
    object_pk = models.BigIntegerField()  # the inventory row's id (no constraint: see module doc)
    external_id = models.CharField(max_length=255)
    applied_at = models.DateTimeField()
    action = models.CharField(max_length=10, choices=HistoryActionChoices.choices)
    # {field: [before, after]} in the API's terms (references by external id)
    changes = models.JSONField(default=dict)
    cause = models.CharField(max_length=10, choices=HistoryCauseChoices.choices)
    event = models.ForeignKey(
        "sync.Event",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # (history_event below, partial)
        related_name="history",
    )
    event_type = models.CharField(max_length=255, blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey(
        "sync.SyncRun",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # (history_run_applied below, partial)
        related_name="history",
    )
    actor = models.CharField(max_length=100, blank=True, default="")  # who applied a plan

    class Meta:
        ordering = ["-applied_at", "-id"]
        verbose_name_plural = "history entries"
        indexes = [
            models.Index(fields=["kind", "object_pk", "applied_at"], name="history_object"),
            models.Index(fields=["applied_at"], name="history_applied_at"),
            # A provider's entries (deleting a provider deletes them), in
            # applied order: each insert lands at the right end of its
            # provider's range.
            models.Index(fields=["cloudprovider", "applied_at"], name="history_provider"),
            # An object is found by its external id through its own row
            # (tombstones included) and, once its tombstone was purged,
            # through an entry that deleted or hid it: an index of those
            # only (sync.history_reads; a port hidden with its host is
            # "created" or "updated" with a deleted_at change). Indexing
            # every entry by external id (random keys) cost a full sync
            # from empty a sixth of history's price at 100k servers.
            models.Index(fields=["external_id"], name="history_deleted", condition=DELETING),
            # An event's and a run's page list what it changed, in applied
            # order. Partial: an entry has one cause or the other, and
            # indexing NULLs would cost every insert of a full sync (or of
            # an event batch) one more index for nothing.
            models.Index(
                fields=["event", "applied_at"],
                name="history_event",
                condition=models.Q(event__isnull=False),
            ),
            models.Index(
                fields=["run", "applied_at"],
                name="history_run_applied",
                condition=models.Q(run__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.external_id} {self.action} at {self.applied_at:%Y-%m-%d %H:%M:%S}"
        )


class PurgeRun(models.Model):
    """One run of the retention purge: its cutoffs and what it removed."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The retention settings the run used ({setting: days}) and the cutoff times.
    settings = models.JSONField(default=dict)
    # {"events": n, "failed_events": n, "history": n, "plans": n, "tombstones": {kind: n}}
    removed = models.JSONField(default=dict)
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"purge #{self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S}"
