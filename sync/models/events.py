"""The event inbox and the sync-run journal."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sync.choices import (
    EventStatusChoices,
    SyncRunKindChoices,
    SyncRunStatusChoices,
)

__all__ = ["Event", "SyncRun"]


class Event(models.Model):
    """One received message (the inbox). Unique per provider by dedup key."""

    cloudprovider = models.ForeignKey(  # (indexed by uniq_event_key, which leads with it)
        "sync.CloudProvider", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    key = models.CharField(max_length=255)
    # (a plain btree: migration 0015 dropped Django's varchar_pattern_ops twin)
    event_type = models.CharField(max_length=255, blank=True, default="", db_index=True)
    status = models.CharField(
        max_length=20, choices=EventStatusChoices.choices, default=EventStatusChoices.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    body = models.JSONField(null=True, blank=True)
    result = models.JSONField(blank=True, default=dict)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When a worker last tried (and did not finish) this event: the sweeper
    # re-queues events left in "queued" long after their last attempt.
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "key"], name="uniq_event_key")
        ]
        indexes = [
            models.Index(fields=["cloudprovider", "status"]),
            # The backlog (queued, failed, dead) per provider for the status
            # page: an index of the few open rows, not of the whole inbox.
            models.Index(fields=["cloudprovider", "status"], name="event_backlog",
                         condition=Q(status__in=["queued", "failed", "dead"])),
        ]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.key}"


class SyncRun(models.Model):
    """One full sync, catch-up, dry run or pushed snapshot of a provider."""

    cloudprovider = models.ForeignKey(
        "sync.CloudProvider", on_delete=models.CASCADE, related_name="sync_runs"
    )
    kind = models.CharField(max_length=20, choices=SyncRunKindChoices.choices)
    status = models.CharField(
        max_length=20, choices=SyncRunStatusChoices.choices, default=SyncRunStatusChoices.RUNNING
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(blank=True, default=dict)
    drift_healed = models.PositiveIntegerField(default=0)
    drift = models.JSONField(blank=True, default=dict)
    plan = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    triggered_by = models.CharField(max_length=100, blank=True, default="")
    # The worker executing the run renews heartbeat_at while it works; a run
    # whose heartbeat went stale (its worker died) is taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    # A split full sync's parts (sync/runs.py): each part's lease (executor,
    # last beat) while it lists, then its outcome; once the run succeeded,
    # each part's duration and objects.
    parts = models.JSONField(blank=True, default=dict, editable=False)
    # A running sync's progress as it streams (sync/progress.py): phase,
    # per kind pages / seen / applied / done, totals; written at most once per
    # CLOUDSYNC_RUN_PROGRESS_SECONDS, and its final state with the outcome.
    progress = models.JSONField(blank=True, default=dict, editable=False)
    # Event coverage (sync.coverage), recorded when a full sync ends: of the
    # objects changed since the previous full sync began (``coverage_since``)
    # until this one began, how many events had already applied (their last
    # value change came from an event); ``drift_healed`` is the rest, the
    # objects this run had to heal. Null: not measured (no previous full sync).
    events_applied = models.PositiveIntegerField(null=True, blank=True, editable=False)
    coverage_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # The per-provider lock: at most one running run.
            models.UniqueConstraint(
                fields=["cloudprovider"],
                condition=Q(status="running"),
                name="one_running_sync_per_provider",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} of {self.cloudprovider}"

    @property
    def event_coverage(self) -> float | None:
        """Share (0-1) of the changes since the previous full sync that events
        had applied; None when not measured or nothing changed."""
        if self.events_applied is None:
            return None
        total = self.events_applied + self.drift_healed
        return self.events_applied / total if total else None
