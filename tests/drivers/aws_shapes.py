"""Builders for the AWS delivery shapes of issue 18, from upstream samples
(tests/fixtures/README.md names each source). Variations (our instance ids,
regions, times) are made here, never by editing the samples."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.drivers.test_aws_fixtures import load, md_blocks
from tests.fixtures import fixture_path

CUSTODIAN = "cloud-custodian/configitem_test.go"
CLOUDTRAIL_LOGS = "awsdocs-aws-cloudtrail-user-guide/cloudtrail-log-file-examples.md"
EC2_CLOUDTRAIL = "awsdocs-amazon-ec2-user-guide/monitor-with-cloudtrail.md"
AMI_EVENTS = "awsdocs-amazon-ec2-user-guide/monitor-ami-events.md"
SUBSCRIPTIONS = "awsdocs-amazon-cloudwatch-logs-user-guide/SubscriptionFilters.md"
CWL_SAMPLE = "aws-lambda-rust-runtime/example-cloudwatch_logs-event.json"
OVERSIZED_RULE = "powertools-lambda-python/awsConfigRuleOversizedConfiguration.json"
_GO_RAW = re.compile(r"^var (\w+) = `(.*?)`", re.S | re.M)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_samples(rel: str = CUSTODIAN) -> dict[str, Any]:
    """The JSON raw strings (``var name = `...```) of a Go test file."""
    text = fixture_path(Path("aws") / rel).read_text()
    return {name: json.loads(body) for name, body in _GO_RAW.findall(text)}


def config_eventbridge() -> dict[str, Any]:
    """cloud-custodian's EventBridge ``Config Configuration Item Change`` for
    an EC2 instance (i-12345678901234567, us-east-1)."""
    return go_samples()["configurationItemChange"]


def config_sns(event: dict[str, Any], message_id: str = "sns-config-1") -> dict[str, Any]:
    """The same configuration item as a Config recorder's SNS topic sends it:
    the notification (the EventBridge ``detail``) as the SNS ``Message`` string."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": f"arn:aws:sns:{event['region']}:{event['account']}:config-topic",
        "Message": json.dumps(event["detail"]),
        "Timestamp": event["time"],
    }


def oversized_eventbridge(instance_id: str, region: str, when: datetime) -> dict[str, Any]:
    """The EventBridge oversized variant (custodian's envelope) carrying
    powertools' EC2 ``configurationItemSummary`` for our instance."""
    event = copy.deepcopy(go_samples()["oversizedConfigurationItem"])
    detail = json.loads(load(OVERSIZED_RULE)["invokingEvent"])
    summary = detail["configurationItemSummary"]
    summary.update(
        resourceId=instance_id,
        awsRegion=region,
        configurationItemCaptureTime=when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )
    detail["notificationCreationTime"] = summary["configurationItemCaptureTime"]
    event.update(detail=detail, region=region, time=stamp(when), id=f"eb-oversized-{instance_id}")
    return event


def ami_event(state: str, image: str, region: str, when: datetime, n: int = 0) -> dict[str, Any]:
    """The EC2 guide's ``EC2 AMI State Change`` example for ``state``, with our
    AMI, region and time (the doc has placeholders there)."""
    sample = next(b for b in md_blocks(AMI_EVENTS) if b.get("detail", {}).get("State") == state)
    sample.update(
        id=f"ami-{state}-{image}-{n}",
        region=region,
        time=stamp(when),
        resources=[f"arn:aws:ec2:{region}::image/{image}"],
    )
    sample["detail"]["ImageId"] = image
    return sample


def log_record(name: str, instance_id: str, region: str, when: datetime) -> dict[str, Any]:
    """A CloudTrail record from the docs for ``name`` (StartInstances,
    StopInstances: CloudTrail guide; TerminateInstances: EC2 guide, the one
    with an ``eventID``), for our instance, region and time."""
    docs = [*md_blocks(CLOUDTRAIL_LOGS), *md_blocks(EC2_CLOUDTRAIL)]
    records = [r for d in docs for r in d.get("Records", [])]
    record = copy.deepcopy(next(r for r in records if r.get("eventName") == name))
    record.update(awsRegion=region, eventTime=stamp(when))
    text = json.dumps(record).replace(_first_instance(record), instance_id)
    return json.loads(text)


def _first_instance(record: dict[str, Any]) -> str:
    return record["requestParameters"]["instancesSet"]["items"][0]["instanceId"]


def log_file(*records: dict[str, Any]) -> dict[str, Any]:
    """A CloudTrail log file's content."""
    return {"Records": list(records)}


def as_eventbridge(record: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The same call as EventBridge delivers it: the CloudWatch Events guide's
    ``AWS API Call via CloudTrail`` envelope with the record as ``detail``."""
    docs = md_blocks("awsdocs-amazon-cloudwatch-events-user-guide/EventTypes.md")
    event = next(d for d in docs if d.get("detail-type") == "AWS API Call via CloudTrail")
    event.update(
        id=event_id,
        source="aws.ec2",
        region=record["awsRegion"],
        time=record["eventTime"],
        detail=copy.deepcopy(record),
    )
    return event


def cloudwatch_logs_document(*records: dict[str, Any]) -> dict[str, Any]:
    """The decoded CloudWatch Logs subscription data, in the shape the
    CloudWatch Logs guide shows for a CloudTrail log group (Lambda example),
    its log events carrying our records."""
    document = next(
        b
        for b in md_blocks(SUBSCRIPTIONS)
        if b.get("messageType") == "DATA_MESSAGE" and b.get("logGroup") == "CloudTrail"
    )
    template = document["logEvents"][0]
    document["logEvents"] = [
        {**template, "id": f"{template['id'][:-3]}{n:03d}", "message": json.dumps(record)}
        for n, record in enumerate(records)
    ]
    return document


def awslogs(document: dict[str, Any]) -> dict[str, Any]:
    """What a subscription filter hands a Lambda: ``{"awslogs": {"data":
    base64(gzip(json))}}`` (the shape of aws-lambda-rust-runtime's sample)."""
    shape = load(CWL_SAMPLE)
    data = gzip.compress(json.dumps(document).encode(), mtime=0)
    shape["awslogs"]["data"] = base64.b64encode(data).decode()
    return shape
