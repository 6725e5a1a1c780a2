"""Per-5-minute counts of the inbox, written by the worker (``sync.rollups``).

The status page and its API read these instead of the inbox: a day of a
provider is at most a few thousand rows (288 periods) whatever the event rate, where the
inbox may hold tens of millions. A row counts, for one provider and one
period, the events received (by their ``received_at``) or those that
reached an outcome (processed, ignored, failed, dead; by the time of that
transition); processed and ignored rows are further split by
received→processed lag bucket (``sync.rollups.LAG_BOUNDS``), so percentiles
of the lag come from the same rows.
"""

from __future__ import annotations

from django.db import models

__all__ = ["EventRollup"]


class EventRollup(models.Model):
    """How many events of one provider did one thing in one 5-minute period."""

    cloudprovider = models.ForeignKey(  # (indexed by uniq_event_rollup, which leads with it)
        "sync.CloudProvider", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    period = models.DateTimeField(help_text="Start of the 5-minute period (UTC).")
    # received, processed, ignored, failed, dead (sync.rollups.OUTCOMES)
    outcome = models.CharField(max_length=10)
    # index into sync.rollups.LAG_BOUNDS (processed and ignored); -1: no lag
    lag_bucket = models.SmallIntegerField(default=-1)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "period", "outcome", "lag_bucket"],
                                    name="uniq_event_rollup")
        ]
        indexes = [models.Index(fields=["period"], name="event_rollup_period")]

    def __str__(self) -> str:
        return f"{self.period:%Y-%m-%d %H:%M} {self.outcome} ({self.lag_bucket}): {self.count}"
