"""Every AWS sample in tests/fixtures/aws goes through split/describe/translate,
and the AWS-authored samples translate to the exact Changes we expect.

Also the home of the fixture loader the other AWS test modules import.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sync.changes import Change, Kind, Op, make_version, parse_timestamp
from sync.drivers.aws import AwsEc2Driver
from sync.drivers.base import BadPayload, Translation
from tests.fixtures import FIXTURES, fixture_path
from tests.moto_server import MotoServer, moto_server_fixture  # noqa: F401

DRIVER = AwsEc2Driver()
_BLOCK = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.S)
_AWS_REGION = re.compile(r'(?:"region"|awsRegion\\*")\s*:\s*\\*"([a-z]{2}(?:-[a-z]+)+-\d{1,2})\\*"')


def load(rel: str) -> Any:
    """One ``tests/fixtures/aws`` JSON sample; paths go through
    ``tests.fixtures``, the one place that decides where samples live."""
    return json.loads(fixture_path(Path("aws") / rel).read_text())


def md_blocks(rel: str) -> list[Any]:
    """The fenced code blocks of a markdown doc that parse as JSON."""
    out = []
    for block in _BLOCK.findall(fixture_path(Path("aws") / rel).read_text()):
        try:
            out.append(json.loads(block))
        except ValueError:
            continue
    return out


def all_samples() -> list[tuple[str, Any]]:
    root = FIXTURES / "aws"
    samples: list[tuple[str, Any]] = []
    for path in sorted(root.rglob("*.json")):
        samples.append((str(path.relative_to(root)), json.loads(path.read_text())))
    for path in sorted(root.rglob("*.md")):
        rel = str(path.relative_to(root))
        samples.extend((f"{rel}#{n}", m) for n, m in enumerate(md_blocks(rel)))
    return samples


def event(rel: str, index: int | None = None, **changes: Any) -> dict[str, Any]:
    """A sample (a JSON file, or the ``index``-th JSON block of a .md), deep
    copied, with top-level keys and ``detail`` keys (``detail__state=``) replaced."""
    sample = copy.deepcopy(load(rel) if index is None else md_blocks(rel)[index])
    for key, value in changes.items():
        if key.startswith("detail__"):
            sample["detail"][key[len("detail__") :].replace("_", "-")] = value
        else:
            sample[key.replace("_", "-")] = value
    return sample


# -- every sample --------------------------------------------------------------
def test_every_aws_sample_goes_through(moto_server: MotoServer) -> None:
    seen = {"changes": 0, "ignored": 0, "bad": 0}
    samples = all_samples()
    assert len(samples) > 100  # 7 JSON files and the JSON blocks of 8 docs
    for name, sample in samples:
        # the sample's own region (top-level, or AWS Config's awsRegion), so it is not ignored
        found = _AWS_REGION.search(json.dumps(sample))
        config = moto_server.config(found.group(1) if found else "us-east-1")
        for message in DRIVER.split(sample):
            info = DRIVER.describe(message)
            assert info.key, name
            try:
                result = DRIVER.translate(message, config)
            except BadPayload as exc:
                assert str(exc), name
                # only event *patterns*, transformer templates and examples whose
                # time is a placeholder ("yyyy-mm-ddThh:mm:ssZ") are not messages
                placeholder = str(message.get("time", "")).startswith("yyyy")
                assert placeholder or not isinstance(message.get("detail-type"), str), (name, exc)
                assert "invokingEvent" not in message and "Type" not in message, (name, exc)
                seen["bad"] += 1
                continue
            assert isinstance(result, Translation), name
            assert result.changes or result.ignored, name
            seen["changes" if result.changes else "ignored"] += 1
    assert seen["changes"] >= 10 and seen["ignored"] >= 50 and seen["bad"] >= 5, seen


def test_all_md_blocks_are_found() -> None:
    assert len(md_blocks("awsdocs-aws-config-developer-guide/example-sns-notification.md")) == 3
    assert len(md_blocks("awsdocs-amazon-eventbridge-user-guide/eb-events.md")) == 1


# -- EventBridge state changes: instance unknown to the cloud -> status only -----
def _only(result: Translation) -> Change:
    assert result.ignored is None
    assert len(result.changes) == 1
    return result.changes[0]


@pytest.mark.parametrize(
    ("rel", "index", "instance", "state", "op", "status"),
    [
        (
            "aws-lambda-rust-runtime/example-eventbridge-event-obj.json",
            None,
            "i-abcd1111",
            "pending",
            Op.UPSERT,
            "building",
        ),
        (
            "powertools-lambda-python/eventBridgeEvent.json",
            None,
            "i-1234567890abcdef0",
            "terminated",
            Op.DELETE,
            None,
        ),
        (
            "awsdocs-amazon-eventbridge-user-guide/eb-events.md",
            0,
            "i-1234567890abcdef0",
            "terminated",
            Op.DELETE,
            None,
        ),
        (
            "awsdocs-amazon-eventbridge-user-guide/eb-transform-target-input.md",
            0,
            "i-0123456789",
            "running",
            Op.UPSERT,
            "active",
        ),
        (
            "awsdocs-amazon-ec2-user-guide/monitoring-instance-state-changes.md",
            0,
            "i-abcd1111",
            "pending",
            Op.UPSERT,
            "building",
        ),
    ],
)
def test_state_change_samples(
    moto_server: MotoServer,
    rel: str,
    index: int | None,
    instance: str,
    state: str,
    op: Op,
    status: str | None,
) -> None:
    sample = load(rel) if index is None else md_blocks(rel)[index]
    (message,) = DRIVER.split(sample)
    info = DRIVER.describe(message)
    assert info.key == sample["id"]
    assert info.event_type == "EC2 Instance State-change Notification"
    change = _only(DRIVER.translate(message, moto_server.config(sample["region"])))
    rank = {"pending": 1, "running": 2, "terminated": 6}[state]
    assert change.kind == Kind.HOST and change.op == op and change.external_id == instance
    assert change.version == make_version(parse_timestamp(sample["time"]), rank)
    assert change.source_ref == sample["id"]
    assert dict(change.fields) == ({} if status is None else {"status": status})


def test_sample_from_another_region_is_ignored(moto_server: MotoServer) -> None:
    sample = load("aws-lambda-rust-runtime/example-eventbridge-event-obj.json")
    result = DRIVER.translate(sample, moto_server.config("eu-west-1"))
    assert result.changes == [] and "us-east-1" in result.ignored


def test_non_ec2_samples_are_ignored(moto_server: MotoServer) -> None:
    config = moto_server.config("us-east-1")
    docs = md_blocks("awsdocs-amazon-cloudwatch-events-user-guide/EventTypes.md")
    s3_call = next(d for d in docs if d.get("detail-type") == "AWS API Call via CloudTrail")
    assert "not EC2" in DRIVER.translate(s3_call, config).ignored
    scheduled = next(d for d in docs if d.get("detail-type") == "Scheduled Event")
    assert "not handled" in DRIVER.translate(scheduled, config).ignored
    assert DRIVER.describe(scheduled).key == scheduled["id"]


def test_event_patterns_are_bad_payloads(moto_server: MotoServer) -> None:
    pattern = md_blocks("awsdocs-amazon-eventbridge-user-guide/eb-event-patterns.md")[1]
    with pytest.raises(BadPayload, match="detail-type"):
        DRIVER.translate(pattern, moto_server.config("us-east-1"))
