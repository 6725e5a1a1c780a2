"""EventBridge EC2 state-change and CloudTrail events against instances that
really exist in moto (server mode): the driver re-fetches them with boto3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync.changes import Change, Kind, Op, Source, make_version
from sync.drivers.aws import AwsEc2Driver
from sync.drivers.aws.ec2 import get_clients
from sync.drivers.base import BadPayload, Translation
from tests.drivers.test_aws_fixtures import event, md_blocks
from tests.moto_server import DEFAULT_ACCOUNT, MotoServer, fresh_region, moto_server_fixture  # noqa: F401

DRIVER = AwsEc2Driver()
STATE_SAMPLE = "aws-lambda-rust-runtime/example-eventbridge-event-obj.json"
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RANK = {
    "pending": 1,
    "running": 2,
    "stopping": 3,
    "stopped": 4,
    "shutting-down": 5,
    "terminated": 6,
}


def state_event(
    instance_id: str, state: str, region: str, when: datetime, n: int = 0
) -> dict[str, Any]:
    """The AWS sample with our instance, state, region, time and a fresh id."""
    return event(
        STATE_SAMPLE,
        id=f"evt-{instance_id}-{state}-{n}",
        region=region,
        time=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        resources=[f"arn:aws:ec2:{region}:{DEFAULT_ACCOUNT}:instance/{instance_id}"],
        detail__instance_id=instance_id,
        detail__state=state,
    )


def api_event(
    name: str, region: str, detail: dict[str, Any], when: datetime = T0
) -> dict[str, Any]:
    """The CloudTrail sample (an S3 call in the docs) turned into an EC2 call."""
    docs = md_blocks("awsdocs-amazon-cloudwatch-events-user-guide/EventTypes.md")
    sample = next(d for d in docs if d.get("detail-type") == "AWS API Call via CloudTrail")
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    sample.update(source="aws.ec2", region=region, time=stamp, id=f"ct-{name}-{stamp}")
    base = {"requestParameters": None, "responseElements": None, "awsRegion": region}
    sample["detail"].update(
        base, eventSource="ec2.amazonaws.com", eventName=name, eventTime=stamp, **detail
    )
    return sample


def count_describe_instances(config: dict[str, Any]) -> list[int]:
    """Count DescribeInstances requests through botocore's public event hooks."""
    calls: list[int] = []
    get_clients(config).ec2.meta.events.register(
        "before-call.ec2.DescribeInstances", lambda **kw: calls.append(1)
    )
    return calls


@pytest.fixture(scope="module")
def region() -> str:
    """One moto region for the module: tests look up only their own instances,
    and a new region costs moto a few hundred milliseconds to set up."""
    return fresh_region()


def test_pending_event_re_fetches_everything(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region, name="web-1", tags={"team": "infra"})
    iid, ami = inst["InstanceId"], inst["ImageId"]
    eni = inst["NetworkInterfaces"][0]
    message = state_event(iid, "pending", region, T0)
    assert DRIVER.describe(message).key == message["id"]

    result = DRIVER.translate(message, moto_server.config(region))

    version = make_version(T0, 1)
    image = moto_server.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]

    def change(kind: Kind, ext: str, fields: dict[str, Any]) -> Change:
        return Change(kind, Op.UPSERT, ext, fields, version=version, source_ref=message["id"])

    assert result.ignored is None
    flavor = result.changes[1]
    assert flavor.fields["extra_specs"]["architectures"] == ["x86_64"]
    assert result.changes == [
        change(Kind.PROJECT, DEFAULT_ACCOUNT, {"name": DEFAULT_ACCOUNT}),
        change(
            Kind.FLAVOR,
            "t3.micro",
            {
                "name": "t3.micro",
                "is_public": True,
                "cores": 2,
                "memory": 1024,
                "disk": 0,
                "extra_specs": flavor.fields["extra_specs"],
            },
        ),
        change(
            Kind.IMAGE,
            ami,
            {
                "name": image["Name"],
                "status": "available",
                "architecture": "x86_64",
                "os_distro": image["Platform"],  # moto has no PlatformDetails
                "visibility": "public",
                "min_disk": image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"],
            },
        ),
        change(
            Kind.HOST,
            iid,
            {
                "project": DEFAULT_ACCOUNT,
                "flavor": "t3.micro",
                "image": ami,
                "hostname": "web-1",
                "status": "building",  # the event's state, though moto already says running
                "hypervisor": inst["Placement"]["AvailabilityZone"],
                "metadata": {
                    "Name": "web-1",
                    "team": "infra",
                    "aws:vpc_id": inst["VpcId"],
                    "aws:subnet_id": inst["SubnetId"],
                },
                "tags": ["Name", "team"],
                "launched_at": inst["LaunchTime"].astimezone(UTC).isoformat(),
            },
        ),
        change(
            Kind.HOST_IP,
            eni["NetworkInterfaceId"],
            {
                "host": iid,
                "port_id": eni["NetworkInterfaceId"],
                "addresses": [
                    {
                        "address": inst["PrivateIpAddress"],
                        "kind": "fixed",
                        "version": 4,
                        "mac": eni["MacAddress"],
                    },
                    {"address": inst["PublicIpAddress"], "kind": "floating", "version": 4},
                ],
            },
        ),
    ]


def test_whole_lifecycle_orders_by_time_then_state(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region, name=None)
    iid = inst["InstanceId"]
    ec2 = moto_server.client("ec2", region)
    config = moto_server.config(region)
    steps = [
        ("pending", T0, None),
        ("running", T0, None),  # same second as pending: the rank orders them
        ("stopping", T0 + timedelta(seconds=30), lambda: ec2.stop_instances(InstanceIds=[iid])),
        ("stopped", T0 + timedelta(seconds=30), None),
        (
            "shutting-down",
            T0 + timedelta(seconds=60),
            lambda: ec2.terminate_instances(InstanceIds=[iid]),
        ),
        ("terminated", T0 + timedelta(seconds=61), None),
    ]
    versions = []
    outcomes = []
    for state, when, action in steps:
        if action:
            action()
        result = DRIVER.translate(state_event(iid, state, region, when), config)
        host = next(c for c in result.changes if c.kind == Kind.HOST)
        assert {c.version for c in result.changes} == {make_version(when, RANK[state])}
        versions.append(host.version)
        outcomes.append((host.op, host.fields.get("status"), host.fields.get("hostname")))
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    dns = inst["PrivateDnsName"]  # no Name tag: the private DNS name
    assert outcomes == [
        (Op.UPSERT, "building", dns),
        (Op.UPSERT, "active", dns),
        (Op.UPSERT, "stopped", dns),
        (Op.UPSERT, "stopped", dns),
        # moto terminates at once; terminated can only be newer than the event, so it is used
        (Op.DELETE, None, None),
        (Op.DELETE, None, None),
    ]


def test_stopped_instance_loses_its_public_ip(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region)
    moto_server.client("ec2", region).stop_instances(InstanceIds=[inst["InstanceId"]])
    result = DRIVER.translate(
        state_event(inst["InstanceId"], " STOPPED ", region, T0), moto_server.config(region)
    )
    (host_ip,) = [c for c in result.changes if c.kind == Kind.HOST_IP]
    assert [a["kind"] for a in host_ip.fields["addresses"]] == ["fixed"]
    assert next(c for c in result.changes if c.kind == Kind.HOST).fields["status"] == "stopped"


def test_two_enis_and_an_elastic_ip(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region)
    ec2 = moto_server.client("ec2", region)
    eni = ec2.create_network_interface(SubnetId=inst["SubnetId"], SecondaryPrivateIpAddressCount=1)
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=inst["InstanceId"], DeviceIndex=1
    )
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=eni_id)
    result = DRIVER.translate(
        state_event(inst["InstanceId"], "running", region, T0), moto_server.config(region)
    )
    host_ips = {c.external_id: c.fields for c in result.changes if c.kind == Kind.HOST_IP}
    assert set(host_ips) == {inst["NetworkInterfaces"][0]["NetworkInterfaceId"], eni_id}
    second = host_ips[eni_id]
    assert second["host"] == inst["InstanceId"] and second["port_id"] == eni_id
    privates = [a["address"] for a in second["addresses"] if a["kind"] == "fixed"]
    assert len(privates) == 2 and all(
        "mac" in a for a in second["addresses"] if a["kind"] == "fixed"
    )
    assert [a["address"] for a in second["addresses"] if a["kind"] == "floating"] == [
        eip["PublicIp"]
    ]


def test_unknown_instance_gives_the_status_only(moto_server: MotoServer, region: str) -> None:
    message = state_event("i-0fedcba9876543210", "stopping", region, T0)
    result = DRIVER.translate(message, moto_server.config(region))
    assert result.changes == [
        Change(
            Kind.HOST,
            Op.UPSERT,
            "i-0fedcba9876543210",
            {"status": "stopped"},
            version=make_version(T0, 3),
            source_ref=message["id"],
        )
    ]


def test_terminated_needs_no_api_call(moto_server: MotoServer, region: str) -> None:
    config = moto_server.config(region)
    calls = count_describe_instances(config)
    result = DRIVER.translate(state_event("i-0fedcba9876543210", "Terminated", region, T0), config)
    assert [(c.op, c.external_id) for c in result.changes] == [(Op.DELETE, "i-0fedcba9876543210")]
    assert calls == []


def test_batch_re_fetches_once(moto_server: MotoServer, region: str) -> None:
    instances = moto_server.launch(region, count=3)
    config = moto_server.config(region)
    calls = count_describe_instances(config)
    messages: list[Any] = [state_event(i["InstanceId"], "running", region, T0) for i in instances]
    messages.insert(1, {"detail-type": "EC2 Instance State-change Notification", "detail": {}})
    results = DRIVER.translate_batch(messages, config)
    assert calls == [1]
    assert isinstance(results[1], BadPayload)
    hosts = [
        next(c for c in r.changes if c.kind == Kind.HOST)
        for r in results
        if isinstance(r, Translation)
    ]
    assert [h.external_id for h in hosts] == [i["InstanceId"] for i in instances]


def test_event_delivered_through_sns(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region)
    inner = state_event(inst["InstanceId"], "running", region, T0)
    envelope = {"Type": "Notification", "MessageId": "sns-42", "Message": json.dumps(inner)}
    (message,) = DRIVER.split(envelope)
    assert message == inner and DRIVER.describe(message).key == inner["id"]
    config = moto_server.config(region)
    assert DRIVER.translate(message, config).changes == DRIVER.translate(envelope, config).changes


def test_powertools_underscore_variant(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region)
    message = event(
        "powertools-lambda-python/eventBridgeEvent.json",
        region=region,
        detail={"instance_id": " " + inst["InstanceId"], "state": "Running"},
    )
    result = DRIVER.translate(message, moto_server.config(region))
    host = next(c for c in result.changes if c.kind == Kind.HOST)
    assert (host.external_id, host.fields["status"]) == (inst["InstanceId"], "active")


# -- CloudTrail ---------------------------------------------------------------------
def test_run_instances_call(moto_server: MotoServer, region: str) -> None:
    instances = moto_server.launch(region, count=2, instance_type="t3.small")
    items = [
        {"instanceId": i["InstanceId"], "instanceState": {"code": 0, "name": "pending"}}
        for i in instances
    ]
    message = api_event(
        "RunInstances", region, {"responseElements": {"instancesSet": {"items": items}}}
    )
    config = moto_server.config(region)
    calls = count_describe_instances(config)
    info = DRIVER.describe(message)
    assert info.event_type == "AWS API Call via CloudTrail/RunInstances"
    result = DRIVER.translate(message, config)
    assert calls == [1]
    hosts = [c for c in result.changes if c.kind == Kind.HOST]
    assert [h.external_id for h in hosts] == [i["InstanceId"] for i in instances]
    kinds = [c.kind for c in result.changes]  # account, type and AMI once for both
    assert (kinds.count(Kind.PROJECT), kinds.count(Kind.FLAVOR), kinds.count(Kind.IMAGE)) == (
        1,
        1,
        1,
    )
    assert kinds.count(Kind.HOST_IP) == 2
    assert {h.fields["status"] for h in hosts} == {"active"}  # re-fetched: no state in the call
    assert {c.version for c in result.changes} == {make_version(T0, 0)}
    key = "cloudtrail:" + message["detail"]["eventID"]  # the call's id, on every route
    assert info.key == key
    assert all(c.source == Source.EVENT and c.source_ref == key for c in result.changes)


def test_tag_and_attribute_calls(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region)
    iid = inst["InstanceId"]
    config = moto_server.config(region)
    moto_server.client("ec2", region).create_tags(
        Resources=[iid], Tags=[{"Key": "env", "Value": "prod"}]
    )
    resources = {"items": [{"resourceId": "vol-0123456789abcdef0"}, {"resourceId": iid}]}
    tags = api_event("CreateTags", region, {"requestParameters": {"resourcesSet": resources}})
    host = next(c for c in DRIVER.translate(tags, config).changes if c.kind == Kind.HOST)
    assert host.external_id == iid and host.fields["metadata"]["env"] == "prod"
    modify = api_event(
        "ModifyInstanceAttribute", region, {"requestParameters": {"instanceId": iid}}
    )
    assert any(c.external_id == iid for c in DRIVER.translate(modify, config).changes)
    volume_only = api_event(
        "CreateTags",
        region,
        {"requestParameters": {"resourcesSet": {"items": [{"resourceId": "vol-1"}]}}},
    )
    assert "names no instance" in DRIVER.translate(volume_only, config).ignored


def test_terminate_call_for_a_vanished_instance(moto_server: MotoServer, region: str) -> None:
    item = {
        "instanceId": "i-0aaaaaaaaaaaaaaaa",
        "currentState": {"code": 32, "name": "shutting-down"},
    }
    message = api_event(
        "TerminateInstances", region, {"responseElements": {"instancesSet": {"items": [item]}}}
    )
    (change,) = DRIVER.translate(message, moto_server.config(region)).changes
    assert (change.op, change.external_id, dict(change.fields)) == (
        Op.UPSERT,
        "i-0aaaaaaaaaaaaaaaa",
        {"status": "stopped"},
    )


def test_failed_and_read_only_calls_are_ignored(moto_server: MotoServer, region: str) -> None:
    config = moto_server.config(region)
    failed = api_event("TerminateInstances", region, {"errorCode": "Client.UnauthorizedOperation"})
    assert "failed" in DRIVER.translate(failed, config).ignored
    read_only = api_event("DescribeInstances", region, {})
    assert "not handled" in DRIVER.translate(read_only, config).ignored


# -- malformed -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"detail": {"instance-id": "i-0abc12345"}}, "detail.state"),
        ({"detail": {"instance-id": "bogus", "state": "running"}}, "detail.instance-id"),
        ({"detail": {"state": "running"}, "resources": []}, "detail.instance-id"),
        ({"time": "yesterday"}, "time"),
        ({"detail": "running"}, "detail"),
        ({"detail_type": ["EC2 Instance State-change Notification"]}, "detail-type"),
    ],
)
def test_malformed_state_events(
    changes: dict[str, Any], field: str, moto_server: MotoServer
) -> None:
    message = event(STATE_SAMPLE, **changes)
    with pytest.raises(BadPayload, match=field):
        DRIVER.translate(message, moto_server.config("us-east-1"))
    assert DRIVER.describe(message).key


def test_not_an_object(moto_server: MotoServer) -> None:
    (message,) = DRIVER.split([42])
    with pytest.raises(BadPayload, match="message"):
        DRIVER.translate(message, moto_server.config("us-east-1"))
    assert DRIVER.describe(message).key.startswith("sha256:")


def test_unknown_state_maps_to_unknown(moto_server: MotoServer, region: str) -> None:
    result = DRIVER.translate(
        state_event("i-0abcdef0123456789", "hibernating", region, T0), moto_server.config(region)
    )
    (change,) = result.changes
    assert change.fields == {"status": "unknown"} and change.version == make_version(T0, 0)
