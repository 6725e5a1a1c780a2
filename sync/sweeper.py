"""The sweeper (a beat task): work whose worker vanished is queued again.

Crash recovery has two layers. The broker redelivers a message whose worker
died once its visibility timeout passes (CLOUDSYNC_REDELIVERY_SECONDS). The
sweeper is the second layer, read from the database itself: inbox events left
"queued" long after their last attempt (a retry message that never came back,
a body whose message was lost) are queued again by id, and running sync runs
whose heartbeat went stale are queued again to be taken over. Both are safe
to repeat: events are claimed before they are applied, runs are taken with a
conditional update.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from sync import inbox, journal, metrics, names, queueing, rollups, runs, split
from sync.models import Event

__all__ = ["sweep"]

log = logging.getLogger(__name__)

BATCH = 500


def sweep() -> dict[str, int]:
    """Queue stuck events (in batches) and abandoned runs, drop status rollups
    past their keep; returns the counts."""
    stuck, dead = inbox.claim_stuck_events()
    for start in range(0, len(stuck), BATCH):
        queueing.send_task(names.REPLAY, event_ids=stuck[start:start + BATCH])
    if dead:
        _count_dead(dead)
    put_back = journal.recover()
    abandoned = runs.abandoned_runs()
    split.clear_finished()
    rollups.purge(timezone.now() - timedelta(days=settings.CLOUDSYNC_ROLLUP_KEEP_DAYS))
    for run_id in abandoned:
        queueing.send_task(names.RUN_SYNC, run_id=run_id)
    if stuck or dead or abandoned or put_back:
        log.warning("sweeper: %d stuck events queued again, %d dead after too many attempts, "
                    "%d abandoned runs queued for takeover", len(stuck), len(dead), len(abandoned))
    return {"events_requeued": len(stuck), "events_dead": len(dead),
            "runs_requeued": len(abandoned), "messages_put_back": put_back}


def _count_dead(ids: list[int]) -> None:
    """Events the sweeper sent to the dead letter, in the metrics."""
    per_provider: dict[tuple[int, str], Counter] = {}
    rows = Event.objects.filter(pk__in=ids).values_list(
        "cloudprovider_id", "cloudprovider__cloud_sync_driver", "event_type")
    for provider_id, driver, event_type in rows:
        per_provider.setdefault((provider_id, driver), Counter())[(event_type, "dead")] += 1
    for (provider_id, driver), outcomes in per_provider.items():
        metrics.count_events(provider_id, driver, outcomes)
