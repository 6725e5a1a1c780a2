"""Full sync (``list_inventory``) and ``test_connection`` against moto."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

from sync.changes import Kind, Op, Source, make_version
from sync.drivers.aws import AwsEc2Driver, ec2
from sync.drivers.aws.inventory import list_inventory
from sync.drivers.base import NetworkError
from tests.moto_server import DEFAULT_ACCOUNT, MotoServer, fresh_region, moto_server_fixture  # noqa: F401

DRIVER = AwsEc2Driver()


def test_listing_paginates_and_streams(moto_server: MotoServer) -> None:
    region = fresh_region()
    launched = []
    for n in range(15):  # moto pages by reservation: 15 reservations of 2 instances
        launched += moto_server.launch(
            region, name=f"node-{n}", count=2, instance_type="t3.micro" if n % 2 else "m5.large"
        )
    (gone,) = moto_server.launch(region, name="gone")
    moto_server.client("ec2", region).terminate_instances(InstanceIds=[gone["InstanceId"]])
    config = moto_server.config(region)
    calls: list[int] = []
    ec2.get_clients(config).ec2.meta.events.register(
        "before-call.ec2.DescribeInstances", lambda **kw: calls.append(1)
    )

    snapshot = list_inventory(config, page_size=5)

    assert inspect.isgenerator(snapshot.changes)
    assert snapshot.kinds == {Kind.HOST, Kind.FLAVOR, Kind.IMAGE, Kind.PROJECT, Kind.HOST_IP}
    assert snapshot.scopes is None
    changes = list(snapshot.changes)
    assert len(calls) == 3  # 15 reservations / 5 per page
    version = make_version(snapshot.started_at, 0)
    assert {c.version for c in changes} == {version}
    assert {c.source for c in changes} == {Source.FULL_SYNC} and {c.op for c in changes} == {
        Op.UPSERT
    }
    assert Counter(c.kind for c in changes) == {
        Kind.PROJECT: 1,
        Kind.FLAVOR: 2,
        Kind.IMAGE: 1,
        Kind.HOST: 30,
        Kind.HOST_IP: 30,
    }
    hosts = {c.external_id: c for c in changes if c.kind == Kind.HOST}
    assert set(hosts) == {i["InstanceId"] for i in launched}  # the terminated one is not listed
    # a reference is emitted before the hosts that use it
    position = {(c.kind, c.external_id): n for n, c in enumerate(changes)}
    for host in hosts.values():
        assert (
            position[(Kind.FLAVOR, host.fields["flavor"])] < position[(Kind.HOST, host.external_id)]
        )
        assert (
            position[(Kind.IMAGE, host.fields["image"])] < position[(Kind.HOST, host.external_id)]
        )
        assert host.fields["project"] == DEFAULT_ACCOUNT and host.fields["status"] == "active"
    flavors = {c.external_id: c.fields for c in changes if c.kind == Kind.FLAVOR}
    assert (flavors["m5.large"]["cores"], flavors["m5.large"]["memory"]) == (2, 8192)
    assert (flavors["t3.micro"]["cores"], flavors["t3.micro"]["memory"]) == (2, 1024)
    first = launched[0]
    assert hosts[first["InstanceId"]].fields["hostname"] == "node-0"
    host_ip = next(
        c for c in changes if c.kind == Kind.HOST_IP and c.fields["host"] == first["InstanceId"]
    )
    assert host_ip.external_id == first["NetworkInterfaces"][0]["NetworkInterfaceId"]


def test_driver_listing_uses_the_default_page_size(moto_server: MotoServer) -> None:
    region = fresh_region()
    moto_server.launch(region, name="solo")
    snapshot = DRIVER.list_inventory(moto_server.config(region))
    kinds = [c.kind for c in snapshot.changes]
    assert kinds == [Kind.PROJECT, Kind.FLAVOR, Kind.IMAGE, Kind.HOST, Kind.HOST_IP]


def test_empty_region_still_lists_the_account(moto_server: MotoServer) -> None:
    snapshot = DRIVER.list_inventory(moto_server.config(fresh_region()))
    assert [(c.kind, c.external_id) for c in snapshot.changes] == [(Kind.PROJECT, DEFAULT_ACCOUNT)]


def test_error_mid_listing_raises_from_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ec2, "MAX_ATTEMPTS", 1)  # our own retry setting: fail fast
    region = fresh_region()
    server = MotoServer()  # its own endpoint, so stopping it leaves the shared one running
    try:
        for n in range(6):  # 6 reservations: two pages of 5
            server.launch(region, name=f"n{n}")
        snapshot = list_inventory(server.config(region), page_size=5)
        changes = iter(snapshot.changes)
        first_page = [next(changes) for _ in range(13)]  # project, flavor, image, 5 x (host, ENI)
        assert Counter(c.kind for c in first_page)[Kind.HOST] == 5
    finally:
        server.stop()
    with pytest.raises(NetworkError, match="ec2:DescribeInstances"):
        list(changes)


def test_connection_reports_what_it_saw(moto_server: MotoServer) -> None:
    region = fresh_region()
    moto_server.launch(region, count=7)
    seen = DRIVER.test_connection(moto_server.config(region))
    assert seen["account"] == DEFAULT_ACCOUNT and seen["region"] == region
    assert seen["arn"].startswith("arn:aws:sts::")
    assert seen["instances_seen"] == 7  # one reservation; moto pages by reservation
    assert len(seen["sample_instances"]) == 5


def test_assume_role_reaches_the_role_account(moto_server: MotoServer) -> None:
    region = fresh_region()
    config = moto_server.config(region, role_arn="arn:aws:iam::222222222222:role/cloudsync-reader")
    seen = DRIVER.test_connection(config)
    assert seen["account"] == "222222222222" and "assumed-role/cloudsync-reader" in seen["arn"]
    snapshot = DRIVER.list_inventory(config)
    assert [(c.kind, c.external_id) for c in snapshot.changes] == [(Kind.PROJECT, "222222222222")]


def test_the_accounts_own_amis_are_listed_even_when_no_instance_uses_them(
    moto_server: MotoServer,
) -> None:
    region = fresh_region()
    (builder,) = moto_server.launch(region, name="builder")
    ec2_client = moto_server.client("ec2", region)
    golden = ec2_client.create_image(InstanceId=builder["InstanceId"], Name="golden-1")["ImageId"]
    old = ec2_client.create_image(InstanceId=builder["InstanceId"], Name="old-1")["ImageId"]
    ec2_client.deregister_image(ImageId=old)
    ec2_client.terminate_instances(InstanceIds=[builder["InstanceId"]])

    images = [c for c in DRIVER.list_inventory(moto_server.config(region)).changes
              if c.kind == Kind.IMAGE]

    # the instance is gone and nothing uses the AMI: an EC2 AMI State Change
    # recorded it, and the full sync keeps it; the deregistered one is not listed
    assert [(c.external_id, c.fields["name"]) for c in images] == [(golden, "golden-1")]
