"""The batch path: many queued bodies recorded with one INSERT, applied in one
transaction; a poison event fails alone; duplicates are one event."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.choices import EventStatusChoices as Status
from sync.ingest import Body, ingest_bodies
from sync.models import CloudHost, CloudPort, Event
from tests.faults.events import nova_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def hosts_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver"]
    return provider_factory(cloud_sync_driver="test.hosts", client_config={"region": "r1"})


@pytest.fixture
def openstack(provider_factory):
    return provider_factory(cloud_sync_driver="openstack.ocata", client_config={
        "auth_url": "http://keystone.invalid:5000/v3", "username": "u", "password": "p",
        "project_name": "admin"})


def host_body(n: int, **extra) -> Body:
    return Body(0, json.dumps({"id": f"e-{n}", "host": f"vm-{n}", "hostname": f"web-{n}", **extra}))


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite does not enforce lengths")
def test_one_poison_event_among_99_good_fails_alone(hosts_provider):
    # given 100 queued bodies, one of which the database refuses at apply time
    bodies = [host_body(n) for n in range(100)]
    bodies[37] = host_body(37, hostname="x" * 300)
    for body in bodies:
        body.provider_id = hosts_provider.pk
    # when the worker ingests them as one batch
    report = ingest_bodies(bodies)
    # then 99 are processed, the culprit failed with its reason, nothing is left open
    assert (report.events, report.processed, report.failed, report.retry) == (100, 99, 1, [])
    statuses = dict(Event.objects.values_list("key", "status"))
    assert statuses.pop("e-37") == Status.FAILED
    assert set(statuses.values()) == {Status.PROCESSED}
    assert Event.objects.get(key="e-37").error.startswith("apply error: DataError")
    assert CloudHost.objects.count() == 99


def test_duplicates_within_and_across_batches_are_one_event(hosts_provider):
    pk = hosts_provider.pk
    first = ingest_bodies([Body(pk, json.dumps({"id": "d", "host": "vm-d", "v": 1})),
                           Body(pk, json.dumps({"id": "d", "host": "vm-d", "v": 1})),
                           Body(pk, json.dumps([{"id": "d", "host": "vm-d", "v": 1}]))])
    again = ingest_bodies([Body(pk, json.dumps({"id": "d", "host": "vm-d", "v": 1}))])
    assert (first.events, first.processed, first.duplicates) == (1, 1, 2)
    assert (again.events, again.processed, again.duplicates) == (1, 0, 1)
    event = Event.objects.get()
    assert (event.key, event.status, event.attempts) == ("d", Status.PROCESSED, 1)


def test_a_batch_of_nova_events_costs_well_under_one_statement_per_event(openstack):
    # given 200 Nova versioned notifications about 40 hosts, one body each
    stream = nova_stream(200, 40, tag="stmts")
    bodies = [Body(openstack.pk, m.text) for m in stream]
    # when they are ingested as one batch
    with CaptureQueriesContext(connection) as queries:
        report = ingest_bodies(bodies)
    # then every one is applied, with at most one SQL statement per 4 events
    assert report.processed == 200 and report.failed == 0
    assert len(queries) <= 50, f"{len(queries)} statements for 200 events"
    assert CloudHost.all_objects.filter(cloudprovider=openstack).count() == 40


def test_the_same_host_changed_several_times_in_one_batch_ends_as_in_order(openstack, provider_factory):
    # given a stream where each host changes many times
    stream = nova_stream(120, 6, tag="same")
    reference = provider_factory(cloud_sync_driver="openstack.ocata",
                                 client_config=openstack.client_config)
    for message in stream:  # one by one, in order
        ingest_bodies([Body(reference.pk, message.text)])
    # when the whole stream, reversed, is one batch
    ingest_bodies([Body(openstack.pk, m.text) for m in reversed(stream)])
    # then hosts and ports are identical
    assert _state(openstack) == _state(reference)


def _state(provider) -> tuple:
    hosts = sorted(
        (h.host_id, h.hostname, h.status, h.deleted_at is None, h.cloudflavor_id and h.cloudflavor.flavor_id)
        for h in CloudHost.all_objects.filter(cloudprovider=provider).select_related("cloudflavor"))
    ports = sorted(
        (p.port_id, p.host.host_id if p.host else None, p.deleted_at is None)
        for p in CloudPort.all_objects.filter(cloudprovider=provider).select_related("host"))
    assert hosts and ports
    return hosts, ports
