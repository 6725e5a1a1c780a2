"""The purge rebuilds the inbox's indexes once enough was removed: failed
events, kept longer than processed ones, leave a few entries on every old
page of the id and ``received_at`` indexes, which VACUUM then cannot free
(real Postgres; REINDEX CONCURRENTLY runs outside a transaction only)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from sync import retention
from sync.choices import EventStatusChoices as Status
from sync.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

INDEXES = ("sync_event_pkey", "sync_event_received_at_7793173a")


def fill(provider, n: int, days: float = 20) -> None:
    """``n`` events received ``days`` ago, one in 100 failed (kept 90 days),
    in id and time order, as an inbox fills."""
    start = timezone.now() - timedelta(days=days)
    Event.objects.bulk_create(
        [
            Event(
                cloudprovider=provider,
                key=f"k-{days}-{i}",
                status=Status.FAILED if i % 100 == 0 else Status.PROCESSED,
                body={},
                received_at=start + timedelta(seconds=i),
                processed_at=start + timedelta(seconds=i),
            )
            for i in range(n)
        ],
        batch_size=5000,
    )


def sizes() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM sync_event")
        out = {}
        for name in INDEXES:
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
            (out[name],) = cursor.fetchone()
    return out


@pytest.mark.parametrize("fraction", [0.5, 0])
def test_the_purge_rebuilds_the_indexes_failed_events_keep_from_emptying(
    provider, settings, monkeypatch, fraction
):
    settings.CLOUDSYNC_INBOX_REINDEX_FRACTION = fraction
    monkeypatch.setattr(retention, "REINDEX_MIN_PURGED", 1000)
    fill(provider, 10_000)
    before = sizes()

    run = retention.purge()

    assert run.removed["events"] == 9_900
    assert Event.objects.count() == 100  # the failed ones, one per old page
    after = sizes()
    if fraction:
        assert run.removed["inbox_reindex"]["rebuilt"] is True
        assert run.removed["inbox_reindex"]["purged_since"] == 0
        assert run.removed["inbox_reindex"]["indexes"] == list(INDEXES)
        for name in INDEXES:
            assert after[name] * 5 < before[name], (name, before, after)
    else:  # the bloat itself: VACUUM frees no page, each still has a failed row
        assert run.removed["inbox_reindex"] == {"purged_since": 9_900, "rebuilt": False}
        assert after == before
    with connection.cursor() as cursor:  # no invalid copy left behind
        cursor.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'sync_event'::regclass"
            " AND NOT indisvalid"
        )
        assert cursor.fetchone() == (0,)


def test_the_count_runs_across_purges_until_a_rebuild(provider, settings, monkeypatch):
    settings.CLOUDSYNC_INBOX_REINDEX_FRACTION = 0.5
    monkeypatch.setattr(retention, "REINDEX_MIN_PURGED", 1000)
    fill(provider, 3000, days=40)  # 100 rows kept (the failed ones) after the first purge
    fill(provider, 600, days=13)  # inside the window: kept

    with transaction.atomic():  # in a transaction: counted, never rebuilt
        first = retention.purge()
    assert first.removed["events"] == 2970
    assert first.removed["inbox_reindex"] == {"purged_since": 2970, "rebuilt": False}

    second = retention.purge()  # nothing new to remove, but the count is enough
    assert second.removed["events"] == 0
    assert second.removed["inbox_reindex"]["rebuilt"] is True

    fill(provider, 500, days=30)
    third = retention.purge()  # counting again from the rebuild
    assert third.removed["inbox_reindex"] == {"purged_since": 495, "rebuilt": False}
