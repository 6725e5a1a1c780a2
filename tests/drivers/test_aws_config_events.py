"""AWS Config ConfigurationItemChangeNotification for EC2 instances: the
Config-rule Lambda form, the SNS-delivered form and the Oversized variant."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sync.changes import Change, Kind, Op, Source, make_version, parse_timestamp
from sync.drivers.aws import AwsEc2Driver
from sync.drivers.base import BadPayload
from tests.drivers.test_aws_fixtures import load, md_blocks
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401

DRIVER = AwsEc2Driver()
POWERTOOLS = "powertools-lambda-python/awsConfigRuleConfigurationChanged.json"
OVERSIZED = "powertools-lambda-python/awsConfigRuleOversizedConfiguration.json"
SNS_DOC = "awsdocs-aws-config-developer-guide/example-sns-notification.md"


def _rewrite_invoking(sample: dict[str, Any], **summary: Any) -> dict[str, Any]:
    """Change keys of the item (or summary) inside the ``invokingEvent`` string."""
    sample = copy.deepcopy(sample)
    inner = json.loads(sample["invokingEvent"])
    item = inner.get("configurationItem") or inner["configurationItemSummary"]
    item.update(summary)
    sample["invokingEvent"] = json.dumps(inner)
    return sample


def _sns(message: dict[str, Any], message_id: str = "sns-1") -> dict[str, Any]:
    """The wire form: SNS ``Message`` is a JSON *string*."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-2:123456789012:config-topic-ohio",
        "Message": json.dumps(message),
        "Timestamp": "2017-01-09T22:50:16.413Z",
    }


def test_lambda_form_maps_the_configuration_directly(moto_server: MotoServer) -> None:
    sample = load(POWERTOOLS)
    (message,) = DRIVER.split(sample)
    info = DRIVER.describe(message)
    key = "config:i-042dd005362091826:1682607791636:2023-04-27T15:03:11.636Z"
    assert info.key == key
    assert info.event_type == "ConfigurationItemChangeNotification"
    assert info.occurred_at == parse_timestamp("2023-04-27T15:03:11.636Z")

    result = DRIVER.translate(message, moto_server.config("us-east-1"))
    version = make_version(parse_timestamp("2023-04-27T15:03:11.636Z"), 4)  # stopped

    def change(kind: Kind, ext: str, fields: dict[str, Any]) -> Change:
        return Change(kind, Op.UPSERT, ext, fields, version=version, source_ref=key)

    tags = {"projeto": "meetup", "Setor": "Desenvolvimento", "CentroCusto": "TI", "Name": "Minha"}
    assert result.ignored is None
    assert result.changes == [
        change(Kind.PROJECT, "0123456789012", {"name": "0123456789012"}),
        change(
            Kind.HOST,
            "i-042dd005362091826",
            {
                "project": "0123456789012",
                "flavor": "t2.medium",
                "image": "ami-09d95fab7fff3776c",
                "hostname": "Minha",
                "status": "stopped",
                "hypervisor": "us-east-1e",
                "metadata": {
                    **tags,
                    "aws:vpc_id": "vpc-2d96be57",
                    "aws:subnet_id": "subnet-cad1f2f4",
                },
                "tags": ["CentroCusto", "Name", "Setor", "projeto"],
                "launched_at": "2023-04-27T14:57:16+00:00",
            },
        ),
        change(
            Kind.HOST_IP,
            "eni-034dd31c4b17ada8c",
            {
                "host": "i-042dd005362091826",
                "port_id": "eni-034dd31c4b17ada8c",
                "addresses": [
                    {
                        "address": "172.31.78.41",
                        "kind": "fixed",
                        "version": 4,
                        "mac": "06:cf:00:c2:17:db",
                    },
                    {"address": "3.232.229.57", "kind": "floating", "version": 4},
                ],
            },
        ),
        change(
            Kind.HOST_IP,
            "eni-09a604c0ec356b06f",
            {
                "host": "i-042dd005362091826",
                "port_id": "eni-09a604c0ec356b06f",
                "addresses": [
                    {
                        "address": "172.31.70.9",
                        "kind": "fixed",
                        "version": 4,
                        "mac": "06:0a:62:00:64:5f",
                    }
                ],
            },
        ),
    ]


def test_sns_delivered_form_both_message_shapes(moto_server: MotoServer) -> None:
    doc_envelope = md_blocks(SNS_DOC)[1]  # AWS docs show Message as an object
    config = moto_server.config("us-east-2")
    for envelope in (doc_envelope, _sns(doc_envelope["Message"])):
        (message,) = DRIVER.split(envelope)
        assert message["messageType"] == "ConfigurationItemChangeNotification"
        result = DRIVER.translate(message, config)
        assert DRIVER.translate(envelope, config).changes == result.changes  # split skipped
        kinds = [(c.kind, c.external_id) for c in result.changes]
        assert kinds == [
            (Kind.PROJECT, "123456789012"),
            (Kind.HOST, "i-007d374c8912e3e90"),
            (Kind.HOST_IP, "eni-fde9493f"),
        ]
        host = result.changes[1]
        assert host.version == make_version(parse_timestamp("2017-01-09T22:50:14.328Z"), 2)
        assert {
            k: host.fields[k] for k in ("hostname", "status", "flavor", "image", "hypervisor")
        } == {
            "hostname": "value",
            "status": "active",
            "flavor": "t2.micro",
            "image": "ami-9be6f38c",
            "hypervisor": "us-east-2c",
        }
        assert result.changes[2].fields["addresses"] == [
            {"address": "172.31.16.84", "kind": "fixed", "version": 4, "mac": "0e:36:a2:2d:c5:e0"},
            {"address": "54.175.43.43", "kind": "floating", "version": 4},
        ]


def test_sns_non_instance_items_are_ignored(moto_server: MotoServer) -> None:
    volume, _, group = md_blocks(SNS_DOC)
    for envelope, region in ((volume, "us-west-2"), (group, "us-east-2")):
        (message,) = DRIVER.split(_sns(envelope["Message"]))
        result = DRIVER.translate(message, moto_server.config(region))
        assert result.changes == [] and "AWS Config item for" in result.ignored


@pytest.mark.parametrize("status", ["ResourceDeleted", "ResourceDeletedNotRecorded"])
def test_resource_deleted_is_a_delete(status: str, moto_server: MotoServer) -> None:
    sample = _rewrite_invoking(load(POWERTOOLS), configurationItemStatus=status)
    result = DRIVER.translate(sample, moto_server.config("us-east-1"))
    assert [(c.kind, c.op, c.external_id) for c in result.changes] == [
        (Kind.HOST, Op.DELETE, "i-042dd005362091826")
    ]
    assert result.changes[0].version == make_version(parse_timestamp("2023-04-27T15:03:11.636Z"), 6)


def test_sam_cli_template_with_placeholders_filled(moto_server: MotoServer) -> None:
    raw = json.dumps(load("aws-sam-cli/ConfigurationItemChangeNotification.json"))
    raw = raw.replace("{{{region}}}", "eu-west-1").replace("{{{account_id}}}", "123456789012")
    sample = json.loads(raw.replace("{{{partition}}}", "aws"))
    result = DRIVER.translate(sample, moto_server.config("eu-west-1"))
    host = next(c for c in result.changes if c.kind == Kind.HOST)
    # configuration is a placeholder: only what the item itself says is mapped
    assert dict(host.fields) == {
        "project": "123456789012",
        "hypervisor": "eu-west-1",
        "metadata": {"<Foo>": "<Bar>"},
        "tags": ["<Foo>"],
    }
    # with the placeholders left in, the region does not match: ignored, not an error
    template = load("aws-sam-cli/ConfigurationItemChangeNotification.json")
    assert "{{{region}}}" in DRIVER.translate(template, moto_server.config("eu-west-1")).ignored


def test_oversized_refetches_the_instance(moto_server: MotoServer) -> None:
    region = fresh_region()
    (instance,) = moto_server.launch(region, name="big-1", instance_type="m5.large")
    sample = _rewrite_invoking(load(OVERSIZED), resourceId=instance["InstanceId"], awsRegion=region)
    (message,) = DRIVER.split(sample)
    assert DRIVER.describe(message).event_type == "OversizedConfigurationItemChangeNotification"
    result = DRIVER.translate(message, moto_server.config(region))
    version = make_version(parse_timestamp("2016-10-06T16:46:16.261Z"), 0)
    assert [(c.kind, c.external_id) for c in result.changes] == [
        (Kind.PROJECT, "123456789012"),
        (Kind.FLAVOR, "m5.large"),
        (Kind.IMAGE, instance["ImageId"]),
        (Kind.HOST, instance["InstanceId"]),
        (Kind.HOST_IP, instance["NetworkInterfaces"][0]["NetworkInterfaceId"]),
    ]
    assert {c.version for c in result.changes} == {version}
    assert {c.source for c in result.changes} == {Source.EVENT}
    flavor = result.changes[1].fields
    assert (flavor["cores"], flavor["memory"], flavor["disk"]) == (2, 8192, 0)
    host = result.changes[3].fields
    assert (host["hostname"], host["status"]) == ("big-1", "active")


def test_oversized_deleted_or_unknown(moto_server: MotoServer) -> None:
    config = moto_server.config("us-west-2")
    unknown = DRIVER.translate(load(OVERSIZED), config)
    assert unknown.changes == [] and "i-00000000" in unknown.ignored
    deleted = _rewrite_invoking(load(OVERSIZED), configurationItemStatus="ResourceDeleted")
    (change,) = DRIVER.translate(deleted, config).changes
    assert (change.op, change.external_id) == (Op.DELETE, "i-00000000")


def test_scheduled_notification_is_ignored(moto_server: MotoServer) -> None:
    scheduled = md_blocks(
        "awsdocs-aws-config-developer-guide/evaluate-config_develop-rules_example-events.md"
    )[2]
    result = DRIVER.translate(scheduled, moto_server.config("us-east-1"))
    assert "ScheduledNotification" in result.ignored


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.update(invokingEvent="{not json"), "invokingEvent"),
        (lambda s: s.update(invokingEvent=json.dumps({"configurationItem": {}})), "messageType"),
        (
            lambda s: s.update(
                invokingEvent=json.dumps(
                    {
                        "messageType": "ConfigurationItemChangeNotification",
                        "configurationItem": {
                            "resourceType": "AWS::EC2::Instance",
                            "resourceId": "i-0abc1234",
                        },
                    }
                )
            ),
            "configurationItemCaptureTime",
        ),
        (
            lambda s: s.update(
                invokingEvent=json.dumps(
                    {"messageType": "ConfigurationItemChangeNotification", "configurationItem": "x"}
                )
            ),
            "configurationItem",
        ),
    ],
)
def test_malformed_config_messages(mutate: Any, field: str, moto_server: MotoServer) -> None:
    sample = copy.deepcopy(load(POWERTOOLS))
    mutate(sample)
    with pytest.raises(BadPayload, match=field):
        DRIVER.translate(sample, moto_server.config("us-east-1"))
    assert DRIVER.describe(sample).key  # describe never raises
