"""Per-minute counts of the inbox, written by the worker (``sync.rollups``).

The status page and its API read these instead of the inbox: a day of a
provider is at most a few thousand rows whatever the event rate, where the
inbox may hold tens of millions. A row counts, for one provider and one
minute, the events received (by their ``received_at`` minute) or those that
reached an outcome (processed, ignored, failed, dead; by the minute of that
transition); processed and ignored rows are further split by
received→processed lag bucket (``sync.rollups.LAG_BOUNDS``), so percentiles
of the lag come from the same rows.
"""

from __future__ import annotations

from django.db import models

__all__ = ["EventRollup"]


class EventRollup(models.Model):
    """How many events of one provider did one thing in one minute."""

    cloudprovider = models.ForeignKey("sync.CloudProvider", on_delete=models.CASCADE,
                                      related_name="+")
    minute = models.DateTimeField()
    # received, processed, ignored, failed, dead (sync.rollups.OUTCOMES)
    outcome = models.CharField(max_length=10)
    # index into sync.rollups.LAG_BOUNDS (processed and ignored); -1: no lag
    lag_bucket = models.SmallIntegerField(default=-1)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "minute", "outcome", "lag_bucket"],
                                    name="uniq_event_rollup")
        ]
        indexes = [models.Index(fields=["minute"], name="event_rollup_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.outcome} ({self.lag_bucket}): {self.count}"
