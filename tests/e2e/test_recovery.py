"""Crash recovery read from the database itself: the sweeper re-queues inbox
events left queued and runs whose worker stopped its heartbeat; a redelivered
run message finds its run held by a live worker and does nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sync import runs, sweeper
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudHost, Event, SyncRun
from tests.broker import purge, queued_messages
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_AGO = timedelta(hours=1)


@pytest.fixture
def hosts_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver", "tests.test_drivers.SlowListingDriver"]
    return provider_factory(cloud_sync_driver="test.hosts", client_config={"region": "r1"})


@pytest.fixture
def slow_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.SlowListingDriver"]
    return provider_factory(cloud_sync_driver="test.slow_listing", client_config={"seconds": 1.5})


def stranded_event(provider, key: str, *, attempts: int = 0) -> Event:
    """An event a worker recorded and then died on (queued, last touched long ago)."""
    event = Event.objects.create(
        cloudprovider=provider, key=key, body={"id": key, "host": f"vm-{key}", "hostname": key},
        received_at=timezone.now() - LONG_AGO, attempts=attempts,
    )
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - LONG_AGO)
    return event


def test_the_sweeper_requeues_stranded_events_once_and_a_worker_applies_them(hosts_provider):
    purge()
    # given two stranded events, one recent queued event, one processed event
    a, b = stranded_event(hosts_provider, "a"), stranded_event(hosts_provider, "b")
    Event.objects.create(cloudprovider=hosts_provider, key="fresh", body={},
                         received_at=timezone.now())
    Event.objects.create(cloudprovider=hosts_provider, key="done", body={}, status=Status.PROCESSED,
                         received_at=timezone.now() - LONG_AGO)
    # when the sweeper runs twice
    first, second = sweeper.sweep(), sweeper.sweep()
    # then only the stranded ones are queued again, once
    assert first == {"events_requeued": 2, "events_dead": 0, "runs_requeued": 0,
                     "messages_put_back": 0}
    assert second["events_requeued"] == 0
    messages = queued_messages()
    assert [m["headers"]["task"] for m in messages] == ["sync.tasks.replay"]
    assert set(Event.objects.filter(pk__in=[a.pk, b.pk]).values_list("attempts", flat=True)) == {1}


def test_a_swept_event_is_applied_by_a_real_worker(hosts_provider, celery_worker):
    event = stranded_event(hosts_provider, "c")
    sweeper.sweep()
    wait_for(lambda: Event.objects.filter(pk=event.pk, status=Status.PROCESSED).exists())
    assert CloudHost.objects.get(host_id="vm-c").hostname == "c"


def test_an_event_swept_past_the_retry_limit_goes_to_the_dead_letter(hosts_provider, settings):
    settings.CLOUDSYNC_RETRY_MAX = 3
    event = stranded_event(hosts_provider, "tired", attempts=3)
    assert sweeper.sweep()["events_dead"] == 1
    event.refresh_from_db()
    assert event.status == Status.DEAD and "still queued after the last retry" in event.error


def test_a_run_whose_worker_died_is_taken_over(slow_provider, celery_worker, settings):
    # given a running run whose executor stopped beating long ago
    run = SyncRun.objects.create(cloudprovider=slow_provider, kind=RunKind.FULL,
                                 worker="dead-host:1:1",
                                 heartbeat_at=timezone.now() - LONG_AGO)
    # when the sweeper runs
    assert sweeper.sweep()["runs_requeued"] == 1
    # then a live worker takes it over and finishes it
    run = wait_for(lambda: SyncRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED).first())
    assert run.worker != "dead-host:1:1"
    assert CloudHost.objects.filter(cloudprovider=slow_provider, host_id="listed-vm").exists()


def test_a_redelivered_run_message_leaves_a_live_run_alone(slow_provider):
    run = SyncRun.objects.create(cloudprovider=slow_provider, kind=RunKind.FULL,
                                 worker="alive:2:2", heartbeat_at=timezone.now())
    result = runs.execute_run(run.pk)
    assert result.status == RunStatus.RUNNING and result.worker == "alive:2:2"
    assert not CloudHost.objects.filter(cloudprovider=slow_provider).exists()
    assert sweeper.sweep()["runs_requeued"] == 0  # a fresh heartbeat is not abandoned


def test_the_executor_renews_the_heartbeat_while_it_works(slow_provider, settings):
    settings.CLOUDSYNC_RUN_HEARTBEAT_SECONDS = 0.2
    run = SyncRun.objects.create(cloudprovider=slow_provider, kind=RunKind.FULL)
    seen: set = set()
    stop = threading.Event()

    def watch() -> None:
        from django.db import connection

        while not stop.is_set():
            seen.add(SyncRun.objects.values_list("heartbeat_at", flat=True).get(pk=run.pk))
            time.sleep(0.05)
        connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        finished = runs.execute_run(run.pk)
    finally:
        stop.set()
        watcher.join()
    assert finished.status == RunStatus.SUCCEEDED
    assert len({value for value in seen if value is not None}) >= 4  # taken + several renewals
