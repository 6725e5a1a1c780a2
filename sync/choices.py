"""Every choice list of the app, named after its model."""

from django.db import models

__all__ = [
    "EventStatusChoices",
    "HistoryActionChoices",
    "HistoryCauseChoices",
    "HostIPKindChoices",
    "HostStatusChoices",
    "SyncRunKindChoices",
    "SyncRunStatusChoices",
]


class HostStatusChoices(models.TextChoices):
    BUILDING = "building", "Building"
    ACTIVE = "active", "Active"
    STOPPED = "stopped", "Stopped"
    PAUSED = "paused", "Paused"
    SUSPENDED = "suspended", "Suspended"
    SHELVED = "shelved", "Shelved"
    RESCUED = "rescued", "Rescued"
    RESIZED = "resized", "Resized (awaiting confirm)"
    SOFT_DELETED = "soft_deleted", "Soft-deleted"
    ERROR = "error", "Error"
    DELETED = "deleted", "Deleted"
    UNKNOWN = "unknown", "Unknown"


class HostIPKindChoices(models.TextChoices):
    FIXED = "fixed", "Fixed"
    FLOATING = "floating", "Floating"


class EventStatusChoices(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"
    DEAD = "dead", "Dead (retries exhausted)"


class SyncRunKindChoices(models.TextChoices):
    FULL = "full", "Full sync"
    CATCH_UP = "catch_up", "Catch-up"
    DRY_RUN = "dry_run", "Dry run"
    SNAPSHOT = "snapshot", "Pushed snapshot"


class SyncRunStatusChoices(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NEEDS_APPROVAL = "needs_approval", "Needs approval"
    PLANNED = "planned", "Planned (dry run)"
    APPLIED = "applied", "Plan applied"


class HistoryCauseChoices(models.TextChoices):
    EVENT = "event", "Inbox event"
    FULL = "full", "Full sync"
    CATCH_UP = "catch_up", "Catch-up"
    SNAPSHOT = "snapshot", "Pushed snapshot"
    PLAN = "plan", "Plan applied by an operator"


class HistoryActionChoices(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"
    RESTORED = "restored", "Restored (resurrected by a full sync)"
