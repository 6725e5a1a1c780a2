"""AWS Config ``ConfigurationItemChangeNotification`` for EC2 instances.

Three deliveries: the SNS topic of a Config recorder (after ``split`` the
message is the notification itself), a Config-rule Lambda event, where
the notification is the JSON *string* ``invokingEvent``, and an EventBridge
``Config Configuration Item Change`` event (the item in ``detail``). A full item carries
the instance's configuration, which is mapped directly (no API call); an
``Oversized`` notification only has a summary, so the instance is re-fetched.
``configurationItemStatus`` ResourceDeleted(NotRecorded) is a delete.
Version = (configurationItemCaptureTime, rank of the configuration's state).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sync.changes import Change, make_version, parse_timestamp
from sync.drivers.aws import mapping
from sync.drivers.aws.parsed import Parsed, instance_id
from sync.drivers.base import BadPayload, body_hash

__all__ = ["CONFIG_DELETED", "config_item_changes", "parse_config"]

CONFIG_CHANGE = "ConfigurationItemChangeNotification"
CONFIG_OVERSIZED = "OversizedConfigurationItemChangeNotification"
CONFIG_DELETED = frozenset({"ResourceDeleted", "ResourceDeletedNotRecorded"})
EC2_INSTANCE = "aws::ec2::instance"


def parse_config(message: Mapping[str, Any]) -> Parsed:
    inner: Any = message
    if "invokingEvent" in message:
        inner = message["invokingEvent"]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError as exc:
                raise BadPayload("invokingEvent: not a JSON document") from exc
        if not isinstance(inner, Mapping):
            raise BadPayload("invokingEvent: expected an object")
    message_type = inner.get("messageType")
    if not isinstance(message_type, str):
        raise BadPayload("messageType: missing")
    occurred = parse_timestamp(inner.get("notificationCreationTime"))
    if message_type == CONFIG_OVERSIZED:
        raw = inner.get("configurationItemSummary")
        where = "configurationItemSummary"
    elif message_type == CONFIG_CHANGE:
        raw = inner.get("configurationItem")
        where = "configurationItem"
    else:
        return Parsed(
            kind="ignored",
            key=body_hash(message),
            event_type=message_type,
            occurred_at=occurred,
            reason=f"AWS Config {message_type} carries no inventory change",
        )
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(i, Mapping) for i in items):
        raise BadPayload(f"{where}: expected an object")
    instances = [i for i in items if str(i.get("resourceType", "")).lower() == EC2_INSTANCE]
    first = instances[0] if instances else items[0]
    capture = parse_timestamp(first.get("configurationItemCaptureTime"))
    key = "config:{}:{}:{}".format(
        first.get("resourceId"),
        first.get("configurationStateId"),
        first.get("configurationItemCaptureTime"),
    )
    base = {"key": key, "event_type": message_type, "occurred_at": capture or occurred}
    base["region"] = first.get("awsRegion") if isinstance(first.get("awsRegion"), str) else None
    if not instances:
        return Parsed(
            kind="ignored", reason=f"AWS Config item for {first.get('resourceType')}", **base
        )
    for item in instances:
        if parse_timestamp(item.get("configurationItemCaptureTime")) is None:
            raise BadPayload(f"{where}.configurationItemCaptureTime: missing or not a timestamp")
        instance_id(item.get("resourceId"), f"{where}.resourceId")
    status = first.get("configurationItemStatus")
    if status == "ResourceNotRecorded":
        return Parsed(kind="ignored", reason="AWS Config: resource not recorded", **base)
    if message_type == CONFIG_OVERSIZED:
        iid = instance_id(first.get("resourceId"), f"{where}.resourceId")
        rank = mapping.state_rank("terminated") if status in CONFIG_DELETED else 0
        return Parsed(
            kind="fetch",
            version=make_version(capture, rank),
            instance_ids=(iid,),
            deleted=status in CONFIG_DELETED,
            **base,
        )
    return Parsed(kind="config", items=tuple(instances), **base)


def config_item_changes(item: Mapping[str, Any], parsed: Parsed) -> list[Change]:
    iid = instance_id(item.get("resourceId"), "configurationItem.resourceId")
    capture = parse_timestamp(item.get("configurationItemCaptureTime"))
    configuration = item.get("configuration")
    configuration = configuration if isinstance(configuration, Mapping) else {}
    if item.get("configurationItemStatus") in CONFIG_DELETED:
        state: str | None = "terminated"
    else:
        state = mapping.normalize_state(mapping.g(mapping.g(configuration, "State"), "Name"))
    version = make_version(capture, mapping.state_rank(state))
    zone = item.get("availabilityZone")
    owner = item.get("awsAccountId")
    return mapping.instance_changes(
        configuration,
        instance_id=iid,
        state=state,
        version=version,
        source_ref=parsed.key,
        owner=owner if isinstance(owner, str) and owner else None,
        item_tags=item.get("tags"),
        availability_zone=zone if isinstance(zone, str) and zone != "Not Applicable" else None,
        complete=False,
    )
