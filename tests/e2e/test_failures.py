"""Temporary errors retry with backoff; bad payloads fail once; dead events replay."""

from __future__ import annotations

import pytest

from sync.choices import EventStatusChoices as Status
from sync.ingest import request_replay
from sync.models import CloudHost, Event
from tests.e2e.conftest import post, wait_for
from tests.test_drivers import HostDriver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hosts_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver"]
    settings.CLOUDSYNC_RETRY_BASE_SECONDS = 0.05
    settings.CLOUDSYNC_RETRY_CAP_SECONDS = 0.2
    settings.CLOUDSYNC_RETRY_MAX = 3
    HostDriver.failures_left.clear()
    return provider_factory(cloud_sync_driver="test.hosts", client_config={"region": "r1"})



def test_network_errors_are_retried_until_success(client, hosts_provider, celery_worker):
    HostDriver.failures_left["vm-1"] = 2
    post(client, hosts_provider, {"id": "e1", "host": "vm-1", "hostname": "web"})
    event = wait_for(lambda: Event.objects.filter(key="e1", status=Status.PROCESSED).first())
    assert event.attempts == 3  # two failed tries, then the good one
    assert CloudHost.objects.get(host_id="vm-1").hostname == "web"


def test_bad_payload_fails_once_with_reason_and_others_in_the_batch_go_on(client, hosts_provider, celery_worker):
    post(client, hosts_provider, [{"id": "bad"}, {"id": "good", "host": "vm-2"}, {"id": "quiet", "host": "vm-3", "ignore": True}])
    wait_for(lambda: Event.objects.filter(key="good", status=Status.PROCESSED).exists())
    bad = wait_for(lambda: Event.objects.filter(key="bad", status=Status.FAILED).first())
    assert "field 'host' is missing" in bad.error
    assert wait_for(lambda: Event.objects.filter(key="quiet", status=Status.IGNORED).first()).result == {
        "ignored": "not interesting"}
    assert not CloudHost.objects.filter(host_id="vm-3").exists()


def test_retries_exhausted_dead_letters_then_replay_processes_once(client, hosts_provider, celery_worker):
    HostDriver.failures_left["vm-9"] = 4  # more than CLOUDSYNC_RETRY_MAX + 1 tries
    post(client, hosts_provider, {"id": "e9", "host": "vm-9", "hostname": "late"})
    dead = wait_for(lambda: Event.objects.filter(key="e9", status=Status.DEAD).first())
    assert "connection reset" in dead.error
    assert not CloudHost.objects.filter(host_id="vm-9").exists()
    # the cloud is healthy again: an operator replays
    assert request_replay([dead.pk]) == [dead.pk]
    assert request_replay([dead.pk]) == []  # already reopened: not queued twice
    wait_for(lambda: Event.objects.filter(key="e9", status=Status.PROCESSED).exists())
    assert CloudHost.objects.get(host_id="vm-9").hostname == "late"
