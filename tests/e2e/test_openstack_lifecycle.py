"""OpenStack lifecycles through the real endpoint, Redis and a Celery worker,
on Nova's own sample notifications."""

from __future__ import annotations

import json
import random

import pytest

from sync.choices import EventStatusChoices as Status
from sync.models import CloudHost, CloudHostIP, Event
from tests.e2e.conftest import post, wait_for
from tests.fixtures import load_nova_versioned, with_wire_fields

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"
STEPS = [
    # (sample, expected (status, flavor id, hypervisor))
    ("instance-create-end.json", ("active", "a22d5517-147c-4147-a0d1-e698df5cd4e3", "compute")),
    ("instance-power_off-end.json", ("stopped", "a22d5517-147c-4147-a0d1-e698df5cd4e3", "compute")),
    ("instance-power_on-end.json", ("active", "a22d5517-147c-4147-a0d1-e698df5cd4e3", "compute")),
    ("instance-resize_finish-end.json", ("resized", "d5a8bb54-365a-45ae-abdb-38d249df7845", "compute")),
    ("instance-resize_confirm-end.json", ("active", "2", "compute")),
]


def messages(with_delete: bool = False) -> list[dict]:
    names = [name for name, _ in STEPS] + (["instance-delete-end.json"] if with_delete else [])
    return [
        with_wire_fields(load_nova_versioned(name), message_id=f"msg-{i}",
                         timestamp=f"2012-10-29 13:43:{i:02d}.000000")
        for i, name in enumerate(names)
    ]


@pytest.fixture
def openstack(provider_factory):
    return lambda: provider_factory(cloud_sync_driver="openstack.ocata", client_config={
        "auth_url": "http://keystone.invalid:5000/v3", "username": "u", "password": "p",
        "project_name": "admin"})



def settled(provider, n: int) -> None:
    wait_for(lambda: Event.objects.filter(cloudprovider=provider, status__in=[
        Status.PROCESSED, Status.IGNORED]).count() >= n)
    assert not Event.objects.filter(cloudprovider=provider, status__in=[Status.FAILED, Status.DEAD]).exists()


def host_state(provider) -> tuple:
    row = CloudHost.all_objects.select_related("cloudflavor", "image", "project").get(
        cloudprovider=provider, host_id=UUID)
    ips = sorted(CloudHostIP.objects.filter(host=row).values_list("address", flat=True))
    return (row.deleted_at is not None, row.status, row.hostname, row.cloudflavor.flavor_id,
            row.cloudflavor.memory, row.hypervisor, row.image.image_id, row.project.project_id, ips)


def test_each_step_gives_the_right_state(client, openstack, celery_worker):
    provider = openstack()
    for i, (message, (_, expected)) in enumerate(zip(messages(), STEPS, strict=True), start=1):
        post(client, provider, message)
        settled(provider, i)
        row = CloudHost.objects.select_related("cloudflavor").get(cloudprovider=provider, host_id=UUID)
        assert (row.status, row.cloudflavor.flavor_id, row.hypervisor) == expected, message["event_type"]
    row = CloudHost.objects.select_related("cloudflavor", "image", "project").get(host_id=UUID)
    assert row.hostname == "some-server"
    assert (row.cloudflavor.cores, row.cloudflavor.memory, row.cloudflavor.disk) == (1, 2048, 20)
    assert row.image.image_id == "155d900f-4e14-4e4c-a73d-069cbf4541e6"
    assert list(row.ips.values_list("address", flat=True)) == ["192.168.1.3"]
    post(client, provider, messages(with_delete=True)[-1])
    settled(provider, len(STEPS) + 1)
    assert not CloudHost.objects.filter(host_id=UUID).exists()
    assert CloudHost.all_objects.get(host_id=UUID).status == "deleted"


def test_shuffled_and_duplicated_ends_in_the_same_state(client, openstack, celery_worker):
    in_order, shuffled, with_delete = openstack(), openstack(), openstack()
    for message in messages():
        post(client, in_order, message)
    rng = random.Random(7)
    noisy = messages() + rng.choices(messages(), k=4)
    rng.shuffle(noisy)
    for message in noisy:
        post(client, shuffled, message)
    deleting = messages(with_delete=True) * 2
    rng.shuffle(deleting)
    post(client, with_delete, deleting)  # one batch, out of order, everything twice
    for provider in (in_order, shuffled):
        settled(provider, len(STEPS))
    settled(with_delete, len(STEPS) + 1)
    assert host_state(shuffled) == host_state(in_order)
    assert host_state(in_order)[:2] == (False, "active")
    assert host_state(with_delete)[:2] == (True, "deleted")
    assert Event.objects.filter(cloudprovider=shuffled).count() == len(STEPS)


def test_envelopes_and_batches_give_identical_results(client, openstack, celery_worker):
    bare, oslo, listener, batch = openstack(), openstack(), openstack(), openstack()
    for message in messages():
        post(client, bare, message)
        post(client, oslo, {"oslo.version": "2.0", "oslo.message": json.dumps(message)})
        post(client, listener, {
            "ctxt": {}, "publisher_id": message["publisher_id"], "event_type": message["event_type"],
            "payload": message["payload"],
            "metadata": {"message_id": message["message_id"], "timestamp": message["timestamp"]},
        })
    post(client, batch, messages())
    for provider in (bare, oslo, listener, batch):
        settled(provider, len(STEPS))
    expected = host_state(bare)
    assert host_state(oslo) == expected
    assert host_state(listener) == expected
    assert host_state(batch) == expected
    keys = set(Event.objects.filter(cloudprovider=bare).values_list("key", flat=True))
    for provider in (oslo, listener, batch):
        assert set(Event.objects.filter(cloudprovider=provider).values_list("key", flat=True)) == keys
