"""Issue 18's AWS delivery shapes at the driver level, on upstream samples:
AWS Config items from EventBridge (full and oversized), ``EC2 AMI State
Change``, CloudTrail records in log files and CloudWatch Logs subscription
deliveries. AWS calls go to moto (server mode) through real boto3."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sync.changes import Change, Kind, Op, make_version, parse_timestamp
from sync.drivers.aws import AwsEc2Driver
from sync.drivers.aws import cloudtrail as ct
from sync.drivers.base import BadPayload
from tests.drivers import aws_shapes as shapes
from tests.drivers.test_aws_fixtures import load, md_blocks
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401

DRIVER = AwsEc2Driver()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTODIAN_KEY = "config:i-12345678901234567:1525278055108:2018-05-02T16:20:55.108Z"


@pytest.fixture(scope="module")
def region() -> str:
    return fresh_region()


def only(messages: Any) -> Any:
    (message,) = DRIVER.split(messages)
    return message


# -- AWS Config through EventBridge -------------------------------------------------
def test_config_item_from_eventbridge_maps_like_the_sns_route(moto_server: MotoServer) -> None:
    event = shapes.config_eventbridge()
    config = moto_server.config("us-east-1")
    info = DRIVER.describe(only(event))
    assert (info.key, info.event_type) == (CUSTODIAN_KEY, "ConfigurationItemChangeNotification")
    assert info.occurred_at == parse_timestamp("2018-05-02T16:20:55.108Z")
    result = DRIVER.translate(only(event), config)
    assert result.ignored is None
    host = next(c for c in result.changes if c.kind == Kind.HOST)
    assert host.external_id == "i-12345678901234567"
    assert host.version == make_version(parse_timestamp("2018-05-02T16:20:55.108Z"), 2)
    assert {k: host.fields[k] for k in ("hostname", "status", "flavor", "image", "project")} == {
        "hostname": "ec2-instance-name",
        "status": "active",
        "flavor": "t2.small",
        "image": "ami-12345678",
        "project": "123456789012",
    }
    assert host.fields["hypervisor"] == "us-east-1b"
    # the same item through the recorder's SNS topic: same key, same changes
    sns = only(shapes.config_sns(event))
    assert DRIVER.describe(sns).key == CUSTODIAN_KEY
    assert DRIVER.translate(sns, config).changes == result.changes


def test_config_item_from_eventbridge_for_another_region_is_ignored(
    moto_server: MotoServer,
) -> None:
    result = DRIVER.translate(shapes.config_eventbridge(), moto_server.config("eu-west-1"))
    assert result.changes == [] and "us-east-1" in result.ignored


def test_oversized_item_from_eventbridge_refetches(moto_server: MotoServer, region: str) -> None:
    (inst,) = moto_server.launch(region, name="big-1", instance_type="m5.large")
    event = shapes.oversized_eventbridge(inst["InstanceId"], region, T0)
    message = only(event)
    info = DRIVER.describe(message)
    assert info.event_type == "OversizedConfigurationItemChangeNotification"
    assert info.key.startswith(f"config:{inst['InstanceId']}:")
    result = DRIVER.translate(message, moto_server.config(region))
    host = next(c for c in result.changes if c.kind == Kind.HOST)
    assert (host.fields["hostname"], host.fields["flavor"]) == ("big-1", "m5.large")
    assert host.version == make_version(T0, 0)


def test_oversized_item_of_another_resource_type_is_ignored(moto_server: MotoServer) -> None:
    event = shapes.go_samples()["oversizedConfigurationItem"]  # an SSM inventory item
    result = DRIVER.translate(only(event), moto_server.config("us-east-1"))
    assert result.ignored == "AWS Config item for AWS::SSM::ManagedInstanceInventory"


def test_other_config_detail_types_stay_ignored(moto_server: MotoServer) -> None:
    event = shapes.config_eventbridge()
    event["detail-type"] = "Config Rules Compliance Change"
    assert "is not handled" in DRIVER.translate(event, moto_server.config("us-east-1")).ignored


# -- EC2 AMI State Change ------------------------------------------------------------
@pytest.fixture(scope="module")
def own_ami(moto_server: MotoServer, region: str) -> dict[str, Any]:
    (inst,) = moto_server.launch(region, name="builder")
    ec2 = moto_server.client("ec2", region)
    image_id = ec2.create_image(InstanceId=inst["InstanceId"], Name="golden-1")["ImageId"]
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]


def test_ami_available_refetches_the_image(
    moto_server: MotoServer, region: str, own_ami: dict[str, Any]
) -> None:
    ami = own_ami["ImageId"]
    event = shapes.ami_event("available", ami, region, T0)
    info = DRIVER.describe(only(event))
    assert (info.key, info.event_type) == (event["id"], "EC2 AMI State Change")
    result = DRIVER.translate(event, moto_server.config(region))
    assert result.changes == [
        Change(
            Kind.IMAGE,
            Op.UPSERT,
            ami,
            {
                "name": "golden-1",
                "status": "available",
                "architecture": own_ami["Architecture"],
                "visibility": "private",
                **({"os_distro": own_ami["Platform"]} if own_ami.get("Platform") else {}),
                **(
                    {"min_disk": own_ami["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]}
                    if own_ami.get("BlockDeviceMappings")
                    else {}
                ),
            },
            version=make_version(T0, 2),
            source_ref=event["id"],
        )
    ]


def test_ami_failed_and_deregistered(moto_server: MotoServer, region: str) -> None:
    config = moto_server.config(region)
    unknown = "ami-0badc0ffee0000001"  # DescribeImages does not know it: the state only
    failed = DRIVER.translate(shapes.ami_event("failed", unknown, region, T0), config)
    assert [(c.op, c.fields, c.version) for c in failed.changes] == [
        (Op.UPSERT, {"status": "failed"}, make_version(T0, 3))
    ]
    gone = DRIVER.translate(shapes.ami_event("deregistered", unknown, region, T0), config)
    assert [(c.kind, c.op, c.external_id, c.version) for c in gone.changes] == [
        (Kind.IMAGE, Op.DELETE, unknown, make_version(T0, 4))
    ]


def test_ami_events_of_one_batch_share_one_describe_images(
    moto_server: MotoServer, region: str, own_ami: dict[str, Any]
) -> None:
    config = moto_server.config(region)
    calls: list[int] = []
    from sync.drivers.aws.ec2 import get_clients

    get_clients(config).ec2.meta.events.register(
        "before-call.ec2.DescribeImages", lambda **kw: calls.append(1)
    )
    batch = [shapes.ami_event("available", own_ami["ImageId"], region, T0, n) for n in range(3)]
    results = DRIVER.translate_batch(batch, config)
    assert calls == [1] and all(r.changes[0].fields["name"] == "golden-1" for r in results)


def test_ami_doc_samples_have_placeholders() -> None:
    sample = md_blocks(shapes.AMI_EVENTS)[0]
    sample["time"] = "2026-03-01T12:00:00Z"  # the doc's time is "yyyy-mm-ddThh:mm:ssZ"
    with pytest.raises(BadPayload, match="not an image id"):
        DRIVER.translate(sample, {"region_name": "us-east-1"})


# -- CloudTrail records outside EventBridge -------------------------------------------
def test_log_file_records_are_split_and_keyed_by_event_id() -> None:
    doc = md_blocks(shapes.EC2_CLOUDTRAIL)[0]  # TerminateInstances, with an eventID
    (record,) = DRIVER.split(doc)
    info = DRIVER.describe(record)
    assert info.key == "cloudtrail:6e12345-2a4e-417c-aa78-7594fEXAMPLE"
    assert info.event_type == "CloudTrail record/TerminateInstances"
    assert info.occurred_at == parse_timestamp("2016-05-20T08:27:45Z")
    every = [m for b in md_blocks(shapes.CLOUDTRAIL_LOGS) for m in DRIVER.split(b)]
    names = [DRIVER.describe(m).event_type for m in every]
    assert "CloudTrail record/StartInstances" in names and len(every) >= 8


def test_log_record_translates_like_the_eventbridge_call(
    moto_server: MotoServer, region: str
) -> None:
    (inst,) = moto_server.launch(region, name="api-1")
    iid = inst["InstanceId"]
    moto_server.client("ec2", region).stop_instances(InstanceIds=[iid])
    record = shapes.log_record("TerminateInstances", iid, region, T0)
    record["eventName"] = "StopInstances"  # the TerminateInstances doc record, as a stop
    config = moto_server.config(region)
    from_log = only(shapes.log_file(record))
    from_bridge = only(shapes.as_eventbridge(record, "eb-1"))
    assert DRIVER.describe(from_log).key == DRIVER.describe(from_bridge).key
    assert DRIVER.describe(from_log).key == "cloudtrail:" + record["eventID"]
    log_changes = DRIVER.translate(from_log, config).changes
    assert log_changes == DRIVER.translate(from_bridge, config).changes
    host = next(c for c in log_changes if c.kind == Kind.HOST)
    assert (host.external_id, host.fields["status"]) == (iid, "stopped")
    assert host.version == make_version(T0, 0)


def test_a_whole_log_file_recorded_before_it_was_understood_replays_as_its_records(
    moto_server: MotoServer, region: str
) -> None:
    """Bodies recorded whole and failed by an earlier release (translate
    without split, as ``replay`` does) translate as the records they hold."""
    (inst,) = moto_server.launch(region, name="api-1")
    iid = inst["InstanceId"]
    moto_server.client("ec2", region).stop_instances(InstanceIds=[iid])
    record = shapes.log_record("TerminateInstances", iid, region, T0)
    record["eventName"] = "StopInstances"
    config = moto_server.config(region)
    whole = shapes.log_file(record)
    assert DRIVER.translate(whole, config).changes == DRIVER.translate(
        only(whole), config
    ).changes != []


def test_log_records_of_other_calls_are_ignored() -> None:
    reasons = {}
    for block in md_blocks(shapes.CLOUDTRAIL_LOGS)[2:]:
        for record in DRIVER.split(block):
            info = DRIVER.describe(record)
            config = {"region_name": record["awsRegion"]}  # nothing is fetched
            reasons[info.event_type] = DRIVER.translate(record, config).ignored
    assert (
        reasons["CloudTrail record/CreateKeyPair"] == "EC2 API call 'CreateKeyPair' is not handled"
    )
    assert (
        reasons["CloudTrail record/CreateUser"]
        == "CloudTrail call to 'iam.amazonaws.com' is not EC2"
    )
    assert reasons["CloudTrail record/AwsCloudTrailInsight"].startswith("CloudTrail Insights")
    bare = load("aws-lambda-rust-runtime/example-cloudwatch-cloudtrail-assumed-role.json")
    assert "is not EC2" in DRIVER.translate(only(bare), {"region_name": "eu-west-1"}).ignored


def test_cloudwatch_logs_delivery_yields_each_record(moto_server: MotoServer, region: str) -> None:
    (a, b) = moto_server.launch(region, name="cwl", count=2)
    records = [
        shapes.log_record("StartInstances", a["InstanceId"], region, T0),
        shapes.log_record("TerminateInstances", b["InstanceId"], region, T0),
    ]
    body = shapes.awslogs(shapes.cloudwatch_logs_document(*records))
    parts = list(DRIVER.split(body))
    assert parts == records
    # the decoded document (a forwarder that decodes first) gives the same
    assert list(DRIVER.split(shapes.cloudwatch_logs_document(*records))) == records
    results = DRIVER.translate_batch(parts, moto_server.config(region))
    assert [next(c for c in r.changes if c.kind == Kind.HOST).external_id for r in results] == [
        a["InstanceId"],
        b["InstanceId"],
    ]


def test_cloudwatch_logs_lines_that_are_not_cloudtrail_fail_alone() -> None:
    sample = load(shapes.CWL_SAMPLE)  # "[ERROR] First test message", ...
    parts = list(DRIVER.split(sample))
    assert [p[ct.LOG_EVENT]["id"] for p in parts] == ["eventId1", "eventId2"]
    assert len({DRIVER.describe(p).key for p in parts}) == 2
    with pytest.raises(BadPayload, match="'testLogGroup' is not a CloudTrail record"):
        DRIVER.translate(parts[0], {"region_name": "us-east-1"})
    # the guide's own example messages are truncated JSON: the same failure
    doc = next(b for b in md_blocks(shapes.SUBSCRIPTIONS) if b.get("logGroup") == "CloudTrail")
    assert all(ct.LOG_EVENT in p for p in DRIVER.split(doc))


def test_cloudwatch_logs_control_message_is_ignored() -> None:
    control = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1432826855000, "message": "CWL CONTROL MESSAGE"}],
    }
    (part,) = DRIVER.split(shapes.awslogs(control))
    assert "control message" in DRIVER.translate(part, {"region_name": "us-east-1"}).ignored


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"plain text").decode(), "not gzip"),
        (base64.b64encode(gzip.compress(b"[1, 2]", mtime=0)).decode(), "not a CloudWatch Logs"),
        (
            base64.b64encode(gzip.compress(b" " * (ct.MAX_DECODED_BYTES + 1), mtime=0)).decode(),
            "more than",
        ),
    ],
    ids=["not-base64", "not-gzip", "not-logs", "bomb"],
)
def test_bad_awslogs_data_is_a_bad_payload(data: str, match: str) -> None:
    with pytest.raises(BadPayload, match=match):
        list(DRIVER.split({"awslogs": {"data": data}}))


def test_records_inside_sns_are_split_too() -> None:
    doc = md_blocks(shapes.EC2_CLOUDTRAIL)[0]
    envelope = {"Type": "Notification", "MessageId": "sns-ct", "Message": json.dumps(doc)}
    assert list(DRIVER.split(envelope)) == doc["Records"]
