"""Issue 18's delivery shapes end to end: upstream-sourced bodies POSTed to
the endpoint, a real Celery worker, the inventory asserted. AWS re-fetches go
through real boto3 to moto (server mode); the Ceilometer notifier
notifications are built by Ceilometer's own publisher.

Each test also sends the same underlying change by a second route (a Config
item by EventBridge and SNS, a CloudTrail call by EventBridge, log file and
CloudWatch Logs, Ceilometer events by notifier and directly) to a second
provider, and mixes the new shapes into batches with already-supported
ones: the inventories must be exactly those of a single delivery.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync.choices import EventStatusChoices as Status
from sync.models import CloudHost, CloudImage, CloudPort, CloudProject, Event
from tests.drivers import aws_shapes as shapes
from tests.drivers.ceilometer_notifier import as_listener, as_wire, publish
from tests.drivers.test_aws_events import state_event
from tests.drivers.test_aws_fixtures import md_blocks
from tests.drivers.test_aws_shapes import CUSTODIAN_KEY
from tests.drivers.test_openstack_ceilometer import published
from tests.drivers.test_openstack_ceilometer_shapes import glance, modern_delete, project_created
from tests.e2e.conftest import post, wait_for
from tests.e2e.test_ceilometer_publisher import CLIENT_CONFIG, PHASES
from tests.fixtures import load_json
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FINAL = [Status.PROCESSED, Status.IGNORED]


def inventory(provider) -> dict[str, Any]:
    """Every synced row of a provider by external id (tombstones included)."""
    hosts = CloudHost.all_objects.filter(cloudprovider=provider).select_related(
        "cloudflavor", "image", "project"
    )
    return {
        "hosts": {
            h.host_id: (
                h.deleted_at is not None,
                h.hostname,
                h.status,
                h.cloudflavor and h.cloudflavor.flavor_id,
                h.image and h.image.image_id,
                h.project and h.project.project_id,
                h.hypervisor,
                h.tags,
                h.metadata,
                sorted(h.ips.values_list("address", "kind")),
                h.source_version,
            )
            for h in hosts
        },
        "images": {
            i.image_id: (i.deleted_at is not None, i.name, i.status, i.visibility, i.source_version)
            for i in CloudImage.all_objects.filter(cloudprovider=provider)
        },
        "projects": {
            p.project_id: (p.deleted_at is not None, p.name)
            for p in CloudProject.all_objects.filter(cloudprovider=provider)
        },
        "ports": {
            p.port_id: (p.deleted_at is not None, p.host and p.host.host_id, p.addresses)
            for p in CloudPort.all_objects.filter(cloudprovider=provider).select_related("host")
        },
    }


def settled(provider, n: int, *, quiet: bool = False) -> list[Event]:
    """Wait for ``n`` inbox events, all final and none failed; with ``quiet``
    also for the broker's queue to be empty (later duplicates consumed)."""
    rows = Event.objects.filter(cloudprovider=provider)
    try:
        wait_for(lambda: rows.filter(status__in=FINAL).count() == n, timeout=30)
        if quiet:
            wait_for(lambda: queued() == 0)
            time.sleep(0.5)  # a batch taken from the queue is being recorded
    except AssertionError:
        raise AssertionError(
            f"expected {n} settled events: {sorted(rows.values_list('status', 'key', 'error'))}"
        ) from None
    assert rows.count() == n
    assert not rows.exclude(status__in=FINAL).exists()
    return list(rows.order_by("pk"))


def queued() -> int:
    import redis

    from project.celery import app

    return redis.Redis.from_url(app.conf.broker_url).llen("cloudsync.events")


def sns(message: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": message_id, "Message": json.dumps(message)}


# -- AWS ----------------------------------------------------------------------------
def test_config_item_by_eventbridge_and_sns_is_one_delivery(
    client, moto_server: MotoServer, provider_factory, celery_worker
) -> None:
    config = moto_server.config("us-east-1")  # the sample's region
    once, twice = (
        provider_factory(cloud_sync_driver="aws.ec2", client_config=config) for _ in "ab"
    )
    (inst,) = moto_server.launch("us-east-1", name="peer")
    item = shapes.config_eventbridge()
    running = state_event(inst["InstanceId"], "running", "us-east-1", T0)

    post(client, once, [item, running])
    # a batch mixing the EventBridge item with an EC2 state change, then the
    # same item through the recorder's SNS topic and as an EventBridge retry
    post(client, twice, [running, item])
    post(client, twice, shapes.config_sns(item), content_type="text/plain; charset=UTF-8")
    post(client, twice, item)
    events = settled(twice, 2, quiet=True)
    settled(once, 2)
    config_event = next(e for e in events if e.key == CUSTODIAN_KEY)
    assert config_event.status == Status.PROCESSED and config_event.result["host"]
    host = CloudHost.objects.select_related("cloudflavor", "image").get(
        cloudprovider=twice, host_id="i-12345678901234567"
    )
    assert (host.hostname, host.status, host.cloudflavor.flavor_id, host.image.image_id) == (
        "ec2-instance-name",
        "active",
        "t2.small",
        "ami-12345678",
    )
    assert inventory(twice) == inventory(once)


def test_oversized_item_from_eventbridge_and_ami_lifecycle(
    client, moto_server: MotoServer, provider_factory, celery_worker
) -> None:
    region = fresh_region()
    provider = provider_factory(
        cloud_sync_driver="aws.ec2", client_config=moto_server.config(region)
    )
    (inst,) = moto_server.launch(region, name="builder", instance_type="m5.large")
    ec2 = moto_server.client("ec2", region)
    ami = ec2.create_image(InstanceId=inst["InstanceId"], Name="golden-2026")["ImageId"]

    post(
        client,
        provider,
        [
            shapes.oversized_eventbridge(inst["InstanceId"], region, T0),
            shapes.ami_event("available", ami, region, T0),
        ],
    )
    settled(provider, 2)
    host = CloudHost.objects.select_related("cloudflavor").get(cloudprovider=provider)
    assert (host.host_id, host.hostname, host.cloudflavor.flavor_id) == (
        inst["InstanceId"],
        "builder",
        "m5.large",
    )
    image = CloudImage.objects.get(cloudprovider=provider, image_id=ami)
    assert (image.name, image.status) == ("golden-2026", "available")

    ec2.deregister_image(ImageId=ami)
    post(client, provider, shapes.ami_event("deregistered", ami, region, T0 + timedelta(hours=1)))
    settled(provider, 3)
    assert not CloudImage.objects.filter(cloudprovider=provider, image_id=ami).exists()
    assert CloudImage.all_objects.get(cloudprovider=provider, image_id=ami).deleted_at
    # a late "available" (older) never brings it back
    post(client, provider, shapes.ami_event("available", ami, region, T0, n=9))
    settled(provider, 4)
    assert not CloudImage.objects.filter(cloudprovider=provider, image_id=ami).exists()


def test_cloudtrail_call_by_eventbridge_log_file_and_cloudwatch_logs_is_one_delivery(
    client, moto_server: MotoServer, provider_factory, celery_worker
) -> None:
    region = fresh_region()
    config = moto_server.config(region)
    once, thrice = (
        provider_factory(cloud_sync_driver="aws.ec2", client_config=config) for _ in "ab"
    )
    a, b = moto_server.launch(region, name="ct", count=2)
    ec2 = moto_server.client("ec2", region)
    ec2.stop_instances(InstanceIds=[a["InstanceId"]])
    stop = shapes.log_record("TerminateInstances", a["InstanceId"], region, T0)
    stop["eventName"] = "StopInstances"  # the EC2 guide's record (it has an eventID), as a stop
    start = shapes.log_record("StartInstances", b["InstanceId"], region, T0)
    records = [r for d in md_blocks(shapes.CLOUDTRAIL_LOGS) for r in d.get("Records", [])]
    iam = copy.deepcopy(next(r for r in records if r.get("eventName") == "CreateUser"))
    iam["awsRegion"] = region

    post(client, once, shapes.as_eventbridge(stop, "eb-stop-1"))
    post(client, once, shapes.as_eventbridge(start, "eb-start-1"))
    # the log file (with an IAM record), the CloudWatch Logs delivery, and
    # the EventBridge events, one of them in a batch with a state change
    post(client, thrice, shapes.log_file(stop, iam, start))
    post(client, thrice, shapes.awslogs(shapes.cloudwatch_logs_document(stop, start)))
    running = state_event(b["InstanceId"], "running", region, T0 - timedelta(minutes=1))
    post(client, thrice, [shapes.as_eventbridge(stop, "eb-stop-2"), running])
    post(client, once, running)
    settled(once, 3)
    events = settled(
        thrice, 4, quiet=True
    )  # stop, start (one row per call), the IAM record, the state change
    by_key = {e.key: e for e in events}
    assert by_key["cloudtrail:" + stop["eventID"]].status == Status.PROCESSED
    assert "not EC2" in next(e for e in events if "CreateUser" in e.event_type).result["ignored"]
    stopped = CloudHost.objects.get(cloudprovider=thrice, host_id=a["InstanceId"])
    assert (stopped.status, stopped.hostname) == ("stopped", "ct")
    assert CloudHost.objects.get(cloudprovider=thrice, host_id=b["InstanceId"]).status == "active"
    assert inventory(thrice) == inventory(once)


def test_cloudwatch_logs_lines_that_are_not_cloudtrail_fail_with_a_reason(
    client, moto_server: MotoServer, provider_factory, celery_worker
) -> None:
    provider = provider_factory(
        cloud_sync_driver="aws.ec2", client_config=moto_server.config("us-east-1")
    )
    post(client, provider, shapes.load(shapes.CWL_SAMPLE))  # "[ERROR] First test message", ...
    rows = Event.objects.filter(cloudprovider=provider)
    wait_for(lambda: rows.filter(status=Status.FAILED).count() == 2)
    assert {e.error.split(":")[0] for e in rows} == {"bad payload"}
    assert all("'testLogGroup' is not a CloudTrail record" in e.error for e in rows)


# -- OpenStack: Ceilometer ------------------------------------------------------------------
def test_notifier_publisher_gives_the_same_inventory_as_direct_posts(
    client, provider_factory, celery_worker
) -> None:
    direct, notifier, traits = (
        provider_factory(cloud_sync_driver="openstack.ocata", client_config=CLIENT_CONFIG)
        for _ in range(3)
    )
    image_create, image_delete = glance("image.create"), glance("image.delete")
    phases = [[*PHASES[0], image_create], PHASES[1], [*PHASES[2], image_delete]]
    raw_batches = [[published(m, store_raw=True) for m in phase] for phase in phases]
    bare_batches = [[published(m, store_raw=False) for m in phase] for phase in phases]
    raw_notes, bare_notes = publish(raw_batches), publish(bare_batches)
    shapes_of = [as_listener, as_wire, as_listener]  # the relay's shape and the raw wire
    sent = 0
    for n, phase in enumerate(phases):
        for message in phase:
            post(client, direct, message)
        post(client, notifier, shapes_of[n](raw_notes[n]))
        # a batch mixing the notifier notification with a direct notification
        # that it also carries (deduplicated by its message_id)
        post(client, traits, [shapes_of[n](bare_notes[n]), phase[0]])
        sent += len(phase)
        for provider in (direct, notifier, traits):
            settled(provider, sent, quiet=provider is traits)
        if n == 0:
            after_create = inventory(traits)
        want = inventory(direct)
        assert want["hosts"], "the direct posts created no host"
        assert inventory(notifier) == want
    keys = set(Event.objects.filter(cloudprovider=direct).values_list("key", flat=True))
    assert set(Event.objects.filter(cloudprovider=notifier).values_list("key", flat=True)) == keys
    assert set(Event.objects.filter(cloudprovider=traits).values_list("key", flat=True)) == keys
    # without raw: the image from traits (name, status, then its deletion),
    # with a note saying what traits could not carry
    created = image_create["payload"]
    assert after_create["images"][created["id"]][:3] == (False, created["name"], created["status"])
    assert inventory(traits)["images"][image_delete["payload"]["id"]][0] is True
    noted = Event.objects.get(cloudprovider=traits, key=image_create["metadata"]["message_id"])
    assert noted.status == Status.PROCESSED and "visibility" in noted.result["note"]


def test_traits_keep_ports_and_projects_current(client, provider_factory, celery_worker) -> None:
    direct, traits = (
        provider_factory(cloud_sync_driver="openstack.ocata", client_config=CLIENT_CONFIG)
        for _ in range(2)
    )
    create = load_json("neutron/designate/port.create.end.json")
    delete = modern_delete(create, "port")
    project = project_created()
    port_id = create["payload"]["port"]["id"]
    # the port arrives with raw (or directly), its deletion and the project
    # as Ceilometer events without raw, through the notifier
    post(client, direct, create)
    post(client, traits, published(create, store_raw=True))
    settled(direct, 1)
    settled(traits, 1)
    assert not inventory(traits)["ports"][port_id][0]
    (note,) = publish([[published(delete, store_raw=False), published(project, store_raw=False)]])
    post(client, direct, [delete, project])
    post(client, traits, as_listener(note))
    settled(direct, 3)
    settled(traits, 3)
    got = inventory(traits)
    assert got["ports"][port_id][0] is True  # deleted
    assert got["projects"]["671da331c47d4e29bb6ea1d270154ec3"] == (False, "")
    assert got == inventory(direct)
