"""AWS events through the worker's ingest path, real boto3 against moto:
a body of several EventBridge events re-fetches its instances in one call;
then drift made in moto without events is healed by a full sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from sync import runs
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.ingest import ingest_body
from sync.models import CloudHost, CloudPort, Event
from tests.drivers.test_aws_events import count_describe_instances, state_event
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401
from tests.sync.rows import row_versions

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws(moto_server: MotoServer, provider_factory):
    region = fresh_region()
    config = moto_server.config(region)
    return region, config, provider_factory(cloud_sync_driver="aws.ec2", client_config=config)


def test_a_batch_of_state_changes_re_fetches_once(moto_server, aws):
    region, config, provider = aws
    instances = moto_server.launch(region, count=3, name="web")
    calls = count_describe_instances(config)
    body = [state_event(i["InstanceId"], "running", region, T0, n) for n, i in enumerate(instances)]
    report = ingest_body(provider.pk, json.dumps(body))
    assert (report.processed, report.failed) == (3, 0)
    assert calls == [1]
    hosts = CloudHost.objects.filter(cloudprovider=provider).select_related("cloudflavor")
    assert {h.host_id for h in hosts} == {i["InstanceId"] for i in instances}
    assert all(h.status == "active" and h.cloudflavor.cores for h in hosts)


def test_terminate_then_drift_healed_by_a_full_sync(moto_server, aws):
    region, config, provider = aws
    a, b, c = moto_server.launch(region, count=3)
    ec2 = moto_server.client("ec2", region)
    ingest_body(provider.pk, json.dumps(
        [state_event(i["InstanceId"], "running", region, T0, n) for n, i in enumerate((a, b, c))]))
    ec2.terminate_instances(InstanceIds=[a["InstanceId"]])
    ingest_body(provider.pk, json.dumps(state_event(a["InstanceId"], "terminated", region, T0, 9)))
    assert not CloudHost.objects.filter(host_id=a["InstanceId"]).exists()
    # lost events: b stopped, d launched, nobody told us
    ec2.stop_instances(InstanceIds=[b["InstanceId"]])
    (d,) = moto_server.launch(region)
    run = runs.execute_run(runs.claim_run(provider, "full").pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    hosts = {h.host_id: h for h in CloudHost.objects.filter(cloudprovider=provider)}
    assert set(hosts) == {b["InstanceId"], c["InstanceId"], d["InstanceId"]}
    assert hosts[b["InstanceId"]].status == "stopped"
    assert run.drift["host"]["counts"] == {"created": 1, "updated": 1}
    assert Event.objects.filter(cloudprovider=provider, status=Status.PROCESSED).count() == 4


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads Postgres row versions")
def test_a_no_change_re_sync_writes_no_inventory_row(moto_server, aws):
    # given a synced region: instances with their ENIs and addresses, types, AMIs, the account
    region, config, provider = aws
    moto_server.launch(region, count=3)
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    before = row_versions()
    assert all(before.values()), before
    # when it is listed again, unchanged
    again = runs.execute_run(runs.claim_run(provider, "full").pk)
    # then no row is rewritten, though every AWS listing stamps everything
    # with its own start (the run records that once, as the listing floor)
    assert again.status == RunStatus.SUCCEEDED and again.drift_healed == 0
    assert row_versions() == before
    provider.refresh_from_db()
    assert set(provider.listing_floors["listed"]["versions"]) == {
        "host", "flavor", "image", "project", "host_ip"}


def test_a_state_change_older_than_a_listing_that_wrote_nothing_loses(moto_server, aws):
    # given an instance synced as running, stopped and started again in AWS
    # while its events are late; a listing since found it running, as stored
    region, config, provider = aws
    (a,) = moto_server.launch(region)
    iid = a["InstanceId"]
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    stopped_at = datetime.now(UTC)
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    assert CloudHost.objects.get(host_id=iid).status == "active"
    # when the late "stopped" event arrives (moto shows the instance running)
    ingest_body(provider.pk, json.dumps(state_event(iid, "stopped", region, stopped_at, 1)))
    # then it is older than what the listing saw: the host stays active
    assert CloudHost.objects.get(host_id=iid).status == "active"
    assert Event.objects.get(cloudprovider=provider).result["host"] == {"stale": 1}


def test_an_eni_attached_after_a_listing_stays_on_its_host_after_a_late_event(moto_server, aws):
    # given an instance listed twice (so a listing floor covers it); AWS
    # sends no port list for a host, so its floor must not act as an empty one
    region, config, provider = aws
    (a,) = moto_server.launch(region)
    iid = a["InstanceId"]
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    running_at = datetime.now(UTC)  # a "running" event from now, delivered late
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    # when an ENI is attached since, and the late event re-fetches the
    # instance (both ENIs, stamped with the event's older time)
    ec2 = moto_server.client("ec2", region)
    subnet = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=iid, DeviceIndex=1)
    ingest_body(provider.pk, json.dumps(state_event(iid, "running", region, running_at, 1)))
    # then the new ENI is on its host (reviewer's scenario)
    port = CloudPort.objects.select_related("host").get(port_id=eni)
    assert port.host is not None and port.host.host_id == iid


def test_a_deregistered_ami_stays_deleted_after_the_full_sync(moto_server, aws):
    """Its `deregistered` event deletes the image; the next full sync agrees
    (it no longer lists an AMI DescribeImages does not return), though an
    instance still runs from it and keeps referring to it."""
    from sync.models import CloudImage
    from tests.drivers import aws_shapes as shapes

    region, config, provider = aws
    (builder,) = moto_server.launch(region)
    ec2 = moto_server.client("ec2", region)
    ami = ec2.create_image(InstanceId=builder["InstanceId"], Name="golden-1")["ImageId"]
    (user,) = moto_server.launch(region, image_id=ami)
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    assert CloudImage.objects.get(cloudprovider=provider, image_id=ami).name == "golden-1"
    ec2.deregister_image(ImageId=ami)
    ingest_body(provider.pk, json.dumps(shapes.ami_event("deregistered", ami, region, T0)))
    assert not CloudImage.objects.filter(cloudprovider=provider, image_id=ami).exists()

    run = runs.execute_run(runs.claim_run(provider, "full").pk)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert not CloudImage.objects.filter(cloudprovider=provider, image_id=ami).exists()
    host = CloudHost.objects.get(cloudprovider=provider, host_id=user["InstanceId"])
    assert host.image.image_id == ami and host.image.deleted_at is not None
