"""Ceilometer's own ``HttpPublisher`` -> the real endpoint (a live HTTP
server) -> Redis -> a real Celery worker -> database.

Three providers receive the same legacy Nova notifications (StackTach notigen
sequences: create, power off, delete, plus Designate's create.end):

* ``direct``: each notification POSTed as Nova's wire-v1 message (Bearer);
* ``raw``: Ceilometer events with ``[event] store_raw = info``, published
  with Basic credentials from the URL userinfo, as documented;
* ``traits``: Ceilometer events without raw, published with ``?token=``.

After every phase the host rows must be equal: what the inventory shows does
not depend on how the notifications travelled. Events are built by
Ceilometer's converter with its default event_definitions.yaml.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from sync.changes import parse_timestamp
from sync.choices import EventStatusChoices as Status
from sync.models import CloudHost, Event
from tests.drivers.test_openstack_ceilometer import ceilometer_conf, ceilometer_event
from tests.e2e.conftest import wait_for
from tests.fixtures import load_json, load_notigen

pytest.importorskip("ceilometer.publisher.http")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLIENT_CONFIG = {
    "auth_url": "http://keystone.invalid:5000/v3",
    "username": "u",
    "password": "p",
    "project_name": "admin",
}


def phase(name: str, days: int) -> list[dict[str, Any]]:
    """A notigen sequence moved ``days`` later with fresh message ids (the
    templates all start at the same time and reuse ids), published by the
    compute host it names, as Nova's compute service does."""
    out = []
    for m in load_notigen(name):
        m = dict(m)
        ts = parse_timestamp(m["timestamp"]) + timedelta(days=days)
        m["timestamp"] = ts.strftime("%Y-%m-%d %H:%M:%S.%f")
        m["message_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{m['message_id']}"))
        if m["payload"].get("host"):
            m["publisher_id"] = f"compute.{m['payload']['host']}"
        out.append(m)
    return out


PHASES = [
    [
        *phase("compute.instance.create.start_23.json", 0),
        load_json("nova-legacy/designate/compute.instance.create.end.json"),
    ],
    phase("compute.instance.power_off.start_4.json", 1),
    phase("compute.instance.delete.start_8.json", 2),
]


def hosts(provider) -> dict[str, tuple]:
    rows = CloudHost.all_objects.filter(cloudprovider=provider).select_related(
        "cloudflavor", "project"
    )
    return {
        row.host_id: (
            row.deleted_at is not None,
            row.hostname,
            row.status,
            row.cloudflavor and row.cloudflavor.flavor_id,
            row.cloudflavor and (row.cloudflavor.cores, row.cloudflavor.memory),
            row.project and row.project.project_id,
            row.hypervisor,
        )
        for row in rows
    }


def settled(provider, n: int) -> None:
    done = [Status.PROCESSED, Status.IGNORED]
    try:
        wait_for(
            lambda: Event.objects.filter(cloudprovider=provider, status__in=done).count() == n,
            timeout=20,
        )
    except AssertionError:
        rows = Event.objects.filter(cloudprovider=provider)
        raise AssertionError(
            f"provider {provider.pk}: expected {n} settled events, have "
            f"{sorted(rows.values_list('status', 'event_type', 'error'))}"
        ) from None
    bad = Event.objects.filter(cloudprovider=provider).exclude(status__in=done)
    assert not bad.exists(), list(bad.values_list("event_type", "status", "error"))


def test_ceilometer_http_publisher_gives_the_same_hosts_as_direct_posts(
    live_server, provider_factory, celery_worker
):
    from ceilometer.publisher.http import HttpPublisher

    direct, raw, traits = (
        provider_factory(cloud_sync_driver="openstack.ocata", client_config=CLIENT_CONFIG)
        for _ in range(3)
    )
    base = urlparse(live_server.url)
    path = "/cloud-sync/provider/{}/"
    raw_url = (
        f"http://cloudsync:{raw.endpoint_secret}@{base.netloc}{path.format(raw.pk)}"
        "?timeout=5&max_retries=3"
    )
    traits_url = f"{live_server.url}{path.format(traits.pk)}?token={traits.endpoint_secret}"
    raw_pub = HttpPublisher(ceilometer_conf(store_raw=True), urlparse(raw_url))
    traits_pub = HttpPublisher(ceilometer_conf(store_raw=False), urlparse(traits_url))

    session = requests.Session()
    sent = 0
    for messages in PHASES:
        for m in messages:
            response = session.post(
                f"{live_server.url}{path.format(direct.pk)}",
                json=m,
                headers={"Authorization": f"Bearer {direct.endpoint_secret}"},
                timeout=5,
            )
            assert response.status_code == 202, response.text
        # one batch per phase, as the publisher posts a pipeline's events
        raw_pub.publish_events([ceilometer_event(m, store_raw=True) for m in messages])
        traits_pub.publish_events([ceilometer_event(m, store_raw=False) for m in messages])
        sent += len(messages)
        for provider in (direct, raw, traits):
            settled(provider, sent)
        want = hosts(direct)
        assert want, "the direct posts created no host"
        assert hosts(raw) == want
        assert hosts(traits) == want

    # same dedup keys: every event is keyed by the notification's message_id
    keys = set(Event.objects.filter(cloudprovider=direct).values_list("key", flat=True))
    for provider in (raw, traits):
        assert (
            set(Event.objects.filter(cloudprovider=provider).values_list("key", flat=True)) == keys
        )
    final = hosts(direct)
    notigen = PHASES[0][0]["payload"]["instance_id"]
    assert final[notigen][0] is True  # deleted in the last phase
    designate = "3e301a55-fbbe-478d-92d0-eefabf135c38"
    assert final[designate][1:3] == ("TestInstance", "active")
    assert final[designate][6] == "stack01"
