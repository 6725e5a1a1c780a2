"""The per-minute event rollups and the figures read from them, with known
data: what the worker's batch path writes (received, outcomes, lags), and
exact series, totals and lag percentiles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync import inbox, ingest, rollups, status, sweeper
from sync.choices import EventStatusChoices as Status
from sync.models import Event, EventRollup

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def message(i: int | str) -> dict:
    return {"message_id": f"m-{i}", "event_type": "demo", "payload": {}}


def rows(provider) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for outcome, bucket, n in EventRollup.objects.filter(cloudprovider=provider).values_list(
            "outcome", "lag_bucket", "count"):
        out[(outcome, bucket)] = out.get((outcome, bucket), 0) + n
    return out


def test_lag_buckets_and_bounds():
    assert rollups.LAG_BOUNDS[:7] == (0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1)
    assert rollups.LAG_BOUNDS[-2:] == (70_000.0, 100_000.0)
    bucket = rollups.lag_bucket
    assert [bucket(x) for x in (0, 0.01, 0.0101, 0.4, 0.5, 0.51, 3)] == [0, 0, 1, 10, 10, 11, 15]
    assert bucket(10**6) == len(rollups.LAG_BOUNDS)  # overflow


def test_percentiles_are_nearest_rank_bucket_bounds():
    b = rollups.lag_bucket
    hist = {b(0.4): 50, b(2.5): 49, b(40): 1}  # buckets <= 0.5 s, <= 3 s, <= 50 s
    assert status.percentile(hist, 0.5) == 0.5
    assert status.percentile(hist, 0.99) == 3.0
    assert status.percentile(hist, 0.995) == 50.0
    assert status.percentile({b(0.4): 50, b(2.5): 50}, 0.5) == 0.5
    assert status.percentile({b(0.4): 49, b(2.5): 51}, 0.5) == 3.0
    assert status.percentile({}, 0.5) is None
    assert status.percentile({len(rollups.LAG_BOUNDS): 3}, 0.99) == 100_000.0


def test_series_totals_and_lags_from_known_rollups(provider_factory):
    a, b = provider_factory(), provider_factory()
    tally = rollups.Tally()
    t0 = NOW - timedelta(minutes=7)  # 11:53:30 -> step 11:50
    tally.add(a.pk, "received", t0, n=100)
    for lag, n in ((0.4, 50), (2.5, 49), (40, 1)):
        tally.add(a.pk, "processed", t0 + timedelta(seconds=lag), t0, n=n)
    tally.add(a.pk, "ignored", NOW - timedelta(minutes=1), NOW - timedelta(minutes=1, seconds=5),
              n=3)  # lag 5 s, step 11:55
    tally.add(a.pk, "failed", NOW, n=2)
    tally.add(a.pk, "dead", NOW - timedelta(hours=23, minutes=50), n=4)
    tally.add(a.pk, "received", NOW - timedelta(hours=25), n=1000)  # outside the window
    tally.add(b.pk, "received", NOW, n=5)
    tally.add(b.pk, "processed", NOW, NOW - timedelta(seconds=0.012), n=5)
    rollups.write(tally)
    rollups.write(tally)  # added again: counts double, no duplicate rows
    assert EventRollup.objects.count() == len(tally.counts)

    series = status.event_series([a.pk], now=NOW, step=300)
    assert series["start"] == datetime(2026, 3, 1, 12, 5, tzinfo=UTC) - timedelta(hours=24)
    assert series["end"] == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    assert len(series["series"]) == 288
    assert series["totals"] == {"received": 200, "processed": 200, "ignored": 6, "failed": 4,
                                "dead": 8}
    # 206 lagged: 100 <= 0.5 s, 98 <= 3 s, 6 <= 5 s (ignored), 2 <= 50 s; ranks 103 and 204
    assert (series["lag_p50_seconds"], series["lag_p99_seconds"]) == (3.0, 5.0)
    by_start = {p["start"]: p for p in series["series"]}
    at_1150 = by_start[datetime(2026, 3, 1, 11, 50, tzinfo=UTC)]
    assert (at_1150["received"], at_1150["processed"], at_1150["ignored"]) == (200, 200, 0)
    assert (at_1150["lag_p50_seconds"], at_1150["lag_p99_seconds"]) == (0.5, 3.0)
    at_1155 = by_start[datetime(2026, 3, 1, 11, 55, tzinfo=UTC)]
    assert (at_1155["ignored"], at_1155["lag_p50_seconds"]) == (6, 5.0)
    assert by_start[datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]["failed"] == 4
    assert series["series"][1]["dead"] == 8  # 12:10 the day before (the window opens at 12:05)
    assert sum(p["received"] for p in series["series"]) == 200

    hourly = status.event_series([a.pk], now=NOW, step=3600)
    # whole hours: the window is [13:00 the day before, 13:00), the dead at 12:10 is out
    assert len(hourly["series"]) == 24 and hourly["totals"] == {**series["totals"], "dead": 0}
    everyone = status.event_series(None, now=NOW, step=900)
    assert everyone["totals"]["received"] == 210
    assert everyone["lag_p50_seconds"] == 0.5  # 216 lagged, 10 of them b's <= 0.015 s: rank 108
    over = {row["id"]: row for row in status.overview(now=NOW)["providers"]}
    assert over[b.pk]["events"] == {"received": 10, "processed": 10, "ignored": 0, "failed": 0,
                                    "dead": 0}
    assert over[b.pk]["lag_p50_seconds"] == 0.015
    assert over[a.pk]["lag_p99_seconds"] == 5.0


def test_the_batch_path_counts_received_outcomes_and_lag(provider_factory):
    provider = provider_factory()  # noop driver: every event processed
    now = timezone.now()
    bodies = [ingest.Body(provider.pk, message(i), now - timedelta(seconds=40)) for i in range(3)]
    bodies.append(ingest.Body(provider.pk, [message(3), message(0)], now - timedelta(seconds=40)))
    ingest.ingest_bodies(bodies)
    counted = rows(provider)
    assert counted[("received", -1)] == 4  # the duplicate of m-0 is not received twice
    assert counted[("processed", rollups.lag_bucket(40.0))] == 4  # 40 s and a bit: <= 50 s
    assert sum(n for (o, _), n in counted.items() if o == "processed") == 4
    # a redelivered batch records and applies nothing again, and counts nothing
    ingest.ingest_bodies(bodies)
    assert rows(provider) == counted


def test_failed_at_recording_and_by_the_driver(provider_factory, settings):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.ConfiguredDriver"]
    provider = provider_factory()
    ingest.ingest_bodies([ingest.Body(provider.pk, '{"message_id": "x", "a": "\\u0000"}')])
    assert Event.objects.get(cloudprovider=provider).status == Status.FAILED
    assert rows(provider) == {("received", -1): 1, ("failed", -1): 1}


def test_one_upsert_per_batch(provider_factory):
    provider = provider_factory()
    tally = rollups.Tally()
    for i in range(50):
        tally.add(provider.pk, "received", NOW + timedelta(minutes=i % 5))
    with CaptureQueriesContext(connection) as queries:
        rollups.write(tally)
    assert len(queries) == 1
    assert rows(provider) == {("received", -1): 50}


def test_a_rolled_back_batch_counts_nothing(provider_factory):
    provider = provider_factory()
    with pytest.raises(RuntimeError), transaction.atomic():
        inbox.record(provider, inbox.read_body(provider, None, message("r"), timezone.now()))
        assert rows(provider)[("received", -1)] == 1
        raise RuntimeError("rolled back")
    assert rows(provider) == {}


def test_dead_letters_are_counted(provider_factory, settings):
    provider = provider_factory()
    event = Event.objects.create(cloudprovider=provider, key=f"k-{uuid.uuid4()}",
                                 received_at=timezone.now(), status=Status.QUEUED,
                                 attempts=settings.CLOUDSYNC_RETRY_MAX,
                                 attempted_at=timezone.now() - timedelta(hours=1))
    again, dead = inbox.claim_stuck_events()
    assert dead == [event.pk]
    assert rows(provider) == {("dead", -1): 1}
    assert status.inbox_backlog([provider.pk])[provider.pk] == {"queued": 0, "failed": 0,
                                                                "dead": 1}


def test_old_rollups_are_purged(provider_factory):
    provider = provider_factory()
    tally = rollups.Tally()
    old = timezone.now() - timedelta(days=settings.CLOUDSYNC_ROLLUP_KEEP_DAYS + 1)
    tally.add(provider.pk, "received", old)
    tally.add(provider.pk, "received", timezone.now())
    rollups.write(tally)
    sweeper.sweep()
    assert EventRollup.objects.filter(cloudprovider=provider).count() == 1
