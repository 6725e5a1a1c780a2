"""ingest: one bad event never blocks the others; database refusals fail it."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from sync.choices import EventStatusChoices as Status
from sync.ingest import ingest_body
from sync.models import CloudHost, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def hosts_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver"]
    return provider_factory(cloud_sync_driver="test.hosts", client_config={"region": "r1"})


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite does not enforce lengths")
def test_a_value_the_database_refuses_fails_that_event_and_the_batch_goes_on(hosts_provider):
    body = [
        {"id": "too-long", "host": "vm-1", "hostname": "x" * 300},
        {"id": "fine", "host": "vm-2", "hostname": "web"},
    ]
    report = ingest_body(hosts_provider.pk, json.dumps(body))
    assert (report.processed, report.failed, report.retry) == (1, 1, [])
    bad = Event.objects.get(key="too-long")
    assert bad.status == Status.FAILED and bad.error.startswith("apply error: DataError")
    assert Event.objects.get(key="fine").status == Status.PROCESSED
    assert list(CloudHost.objects.values_list("host_id", flat=True)) == ["vm-2"]


def test_duplicate_in_one_body_is_counted_once(hosts_provider):
    body = [{"id": "same", "host": "vm-1"}, {"id": "same", "host": "vm-1"}]
    report = ingest_body(hosts_provider.pk, json.dumps(body))
    assert (report.events, report.processed, report.duplicates) == (1, 1, 1)
    assert Event.objects.filter(key="same").count() == 1


def test_body_for_a_deleted_provider_is_dropped_quietly(hosts_provider):
    pk = hosts_provider.pk
    hosts_provider.delete()
    assert ingest_body(pk, json.dumps({"id": "x", "host": "vm"})).events == 0


def test_a_temporary_error_retries_only_the_affected_event_by_id(hosts_provider):
    from tests.broker import purge, queued_messages
    from tests.test_drivers import HostDriver

    purge()
    HostDriver.failures_left.clear()
    HostDriver.failures_left["vm-1"] = 1
    body = json.dumps([{"id": "a", "host": "vm-1"}, {"id": "b", "host": "vm-2"}])
    report = ingest_body(hosts_provider.pk, body)
    # then the other event is applied now, the failed one waits for a retry by id
    assert report.processed == 1 and len(report.retry) == 1
    event = Event.objects.get(key="a")
    assert (event.status, event.attempts) == (Status.QUEUED, 1)
    assert "connection reset by cloud" in event.error and event.attempted_at
    [retry] = queued_messages()
    assert retry["headers"]["task"] == "sync.tasks.replay"
    assert retry["headers"]["eta"]  # after the backoff
    # and the retry (what the replay task does) applies it once
    from sync.ingest import replay

    assert replay([event.pk]).processed == 1
    assert Event.objects.get(key="a").status == Status.PROCESSED
    assert sorted(CloudHost.objects.values_list("host_id", flat=True)) == ["vm-1", "vm-2"]
