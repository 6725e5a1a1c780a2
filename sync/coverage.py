"""Event coverage: how much of what changed in a cloud the events caught.

For a full sync R of a provider whose previous full sync P (the latest
earlier full sync that completed its listing: succeeded, needs approval or
plan applied) began at ``P.started_at``, the window is
``[P.started_at, R.started_at)``, and:

* **applied by events** (``SyncRun.events_applied``): inventory rows of the
  provider (projects, flavors, images, hosts, ports; tombstones included)
  whose last value change falls in the window and came from an event. A
  row records when a value last changed (``modified_at``; bookkeeping such
  as versions or "last synced by" does not move it) and when an event last
  won a field (``last_event_at``); both take the same timestamp when an
  event changes the row, so "last change by an event" is
  ``last_event_at >= modified_at``. Rows R itself changed afterwards have
  ``modified_at`` inside R, outside the window: they are R's to count.
* **healed by the full sync**: R's ``drift_healed``, the objects R created,
  changed or deleted because the database disagreed with the listing.

Event coverage = applied by events / (applied by events + healed). 100 %:
every change since the previous full sync had reached cloudsync through
events before the full sync looked; the rest is what the notification
pipeline lost (or got wrong), and the full sync had to heal.

Not counted in either share: objects changed after R began (by events
during the run; the next run counts them), objects a catch-up healed in
the window, and port rows moved only because their host changed. The
first full sync of a provider has no window: not measured (None).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F

from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudFlavor, CloudHost, CloudImage, CloudPort, CloudProject, SyncRun

__all__ = ["COMPLETE", "INVENTORY", "applied_by_events", "measure", "previous_full_run"]

INVENTORY = (CloudProject, CloudFlavor, CloudImage, CloudHost, CloudPort)
# Full syncs whose listing completed (the previous run of a window).
COMPLETE = (RunStatus.SUCCEEDED, RunStatus.NEEDS_APPROVAL, RunStatus.APPLIED)


def previous_full_run(run: SyncRun) -> SyncRun | None:
    """The provider's latest full sync that began before ``run`` and
    completed its listing."""
    return (
        SyncRun.objects.filter(cloudprovider_id=run.cloudprovider_id, kind=RunKind.FULL,
                               status__in=COMPLETE, started_at__lt=run.started_at)
        .exclude(pk=run.pk)
        .order_by("-started_at", "-id")
        .only("pk", "started_at")
        .first()
    )


def applied_by_events(provider_id: int, since: datetime, until: datetime) -> int:
    """Inventory rows of the provider whose last value change, in
    ``[since, until)``, came from an event (one COUNT per kind, on the
    ``modified_at`` index)."""
    return sum(
        model.all_objects.filter(
            cloudprovider_id=provider_id, modified_at__gte=since, modified_at__lt=until,
            last_event_at__gte=F("modified_at"),
        ).count()
        for model in INVENTORY
    )


def measure(run: SyncRun) -> tuple[datetime, int] | None:
    """(window start, objects applied by events) of a full sync that just
    completed its listing; None for the provider's first full sync."""
    previous = previous_full_run(run)
    if previous is None:
        return None
    return previous.started_at, applied_by_events(run.cloudprovider_id, previous.started_at,
                                                  run.started_at)
