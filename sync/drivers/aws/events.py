"""Event side of the ``aws.ec2`` driver: message shapes -> what happened.

Handled shapes (samples in tests/fixtures/aws):

* EventBridge ``EC2 Instance State-change Notification`` — thin: instance id
  and state. Version = (event time, state rank); ``terminated`` is a DELETE.
* EventBridge ``AWS API Call via CloudTrail`` for the EC2 calls that change an
  instance, and ``Tag Change on Resource`` for instances — the instance ids
  only; version = (event time, 0).
* EventBridge ``EC2 AMI State Change`` (available, failed, deregistered): the
  AMI is re-fetched with DescribeImages (``available``/``failed``) or deleted
  (``deregistered``); version = (event time, state rank).
* AWS Config ``ConfigurationItemChangeNotification`` (and the ``Oversized``
  variant) for ``AWS::EC2::Instance`` (parsed in ``awsconfig``): via SNS, as
  a Config-rule event, or from EventBridge (``Config Configuration Item
  Change``, whose ``detail`` is the same notification).
* CloudTrail records outside EventBridge (log files ``{"Records": [...]}``,
  CloudWatch Logs subscription deliveries; unpacked in ``cloudtrail``): each
  record is parsed like the ``detail`` of an ``AWS API Call via CloudTrail``
  event. Both routes key a call by its ``eventID``.
* SNS envelopes (unwrapped in ``split``; confirmations handled in ``sns``).

Thin events are completed by re-fetching the instances (``ec2.fetch_lookup``),
which is why ``parse`` (what a message means and needs, ``Parsed.needs()``)
is separate from ``build`` (the Changes): a worker can parse many messages,
fetch once for all of them, and build each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sync.changes import Change, Kind, Op, make_version, parse_timestamp
from sync.drivers.aws import cloudtrail, mapping
from sync.drivers.aws.awsconfig import config_item_changes, parse_config
from sync.drivers.aws.ec2 import Lookup
from sync.drivers.aws.parsed import Parsed, image_id, instance_id
from sync.drivers.aws.sns import is_envelope, unwrap
from sync.drivers.base import BadPayload, EventInfo, body_hash

__all__ = [
    "Parsed",
    "build",
    "describe",
    "needed_ids",
    "needed_images",
    "parse",
    "region_mismatch",
    "split",
]

STATE_CHANGE = "ec2 instance state-change notification"
API_CALL = "aws api call via cloudtrail"
TAG_CHANGE = "tag change on resource"
AMI_CHANGE = "ec2 ami state change"
CONFIG_ITEM = "config configuration item change"
HANDLED = frozenset({STATE_CHANGE, API_CALL, TAG_CHANGE, AMI_CHANGE, CONFIG_ITEM})
# AMI states an event reports, in lifecycle order (the version's second part).
AMI_RANK = {"pending": 1, "available": 2, "failed": 3, "deregistered": 4}
API_CALLS = frozenset(
    {
        "RunInstances",
        "TerminateInstances",
        "StartInstances",
        "StopInstances",
        "ModifyInstanceAttribute",
        "CreateTags",
        "DeleteTags",
    }
)
TERMINAL = frozenset({"shutting-down", "terminated"})  # states a lagging API cannot invent

_ARN_INSTANCE = re.compile(r":instance/(i-[0-9a-zA-Z]+)\s*$")
_ARN_IMAGE = re.compile(r":image/(ami-[0-9a-zA-Z]+)\s*$")


# -- split / describe ----------------------------------------------------------
def split(message: Any) -> Iterator[Any]:
    """Unwrap SNS ``Notification`` envelopes (and JSON arrays) into messages,
    and CloudTrail log deliveries into their records (``cloudtrail``)."""
    if isinstance(message, list):
        for element in message:
            yield from split(element)
        return
    if is_envelope(message) and message.get("Type") == "Notification":
        inner = unwrap(message)
        if inner is not None:
            for element in inner:
                if cloudtrail.is_logs_delivery(element):
                    yield from cloudtrail.split_logs(element)
                else:
                    yield element
            return
    if cloudtrail.is_logs_delivery(message):
        yield from cloudtrail.split_logs(message)
        return
    yield message


def describe(message: Any) -> EventInfo:
    """Dedup key: EventBridge ``id``, ``sns:<MessageId>``,
    ``config:<resource>:<state id>:<capture time>`` (every Config route),
    ``cloudtrail:<eventID>`` (every CloudTrail route), else a body hash."""
    try:
        parsed = parse(message)
    except BadPayload:  # translate will say what is wrong; the inbox still needs a key
        if isinstance(message, Mapping):
            for id_key, prefix, type_key in (
                ("id", "", "detail-type"),
                ("MessageId", "sns:", "Type"),
            ):
                value = message.get(id_key)
                if isinstance(value, str) and value:
                    kind = message.get(type_key)
                    return EventInfo(
                        key=prefix + value, event_type=kind if isinstance(kind, str) else ""
                    )
        return EventInfo(key=body_hash(message))
    return EventInfo(key=parsed.key, event_type=parsed.event_type, occurred_at=parsed.occurred_at)


# -- parse ---------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _detail_get(detail: Mapping[str, Any], name: str) -> Any:
    """``instance-id`` also as ``instance_id``/``InstanceId``, any case."""
    wanted = name.replace("-", "").replace("_", "").lower()
    for key, value in detail.items():
        if isinstance(key, str) and key.replace("-", "").replace("_", "").lower() == wanted:
            return value
    return None


def _items(container: Any) -> list[Mapping[str, Any]]:
    """CloudTrail's ``{"items": [...]}`` sets."""
    items = container.get("items") if isinstance(container, Mapping) else None
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _arn_ids(message: Mapping[str, Any]) -> list[str]:
    out = []
    for arn in message.get("resources") or []:
        match = _ARN_INSTANCE.search(arn) if isinstance(arn, str) else None
        if match:
            out.append(instance_id(match.group(1), "resources"))
    return out


def parse(message: Any) -> Parsed:
    """Understand one (already split) message or raise ``BadPayload``."""
    if not isinstance(message, Mapping):
        raise BadPayload("message: expected a JSON object")
    if is_envelope(message):
        return _parse_sns(message)
    if cloudtrail.LOG_EVENT in message:
        raise BadPayload(
            f"CloudWatch Logs event of log group {message.get('logGroup')!r} is not a "
            "CloudTrail record (its message is not a JSON record)"
        )
    if message.get("messageType") == cloudtrail.CONTROL_MESSAGE:
        return Parsed(
            kind="ignored",
            key=body_hash(message),
            event_type="CloudWatch Logs CONTROL_MESSAGE",
            reason="CloudWatch Logs control message (destination check)",
        )
    if "invokingEvent" in message or "messageType" in message:
        return parse_config(message)
    if "detail-type" in message:
        return _parse_eventbridge(message)
    if cloudtrail.is_record(message):
        return _parse_record(message)
    raise BadPayload(
        "detail-type: missing (not an EventBridge, SNS, AWS Config or CloudTrail message)"
    )


def _parse_sns(message: Mapping[str, Any]) -> Parsed:
    kind = str(message.get("Type"))
    msg_id = message.get("MessageId")
    key = f"sns:{msg_id}" if isinstance(msg_id, str) and msg_id else body_hash(message)
    common = {"key": key, "event_type": f"SNS {kind}"}
    common["occurred_at"] = parse_timestamp(message.get("Timestamp"))
    if kind == "SubscriptionConfirmation":
        return Parsed(kind="sns", **common)
    if kind == "UnsubscribeConfirmation":
        return Parsed(kind="ignored", reason="SNS unsubscribe confirmation", **common)
    raise BadPayload("Message: not a JSON document")  # a Notification split() could not unwrap


def _parse_eventbridge(message: Mapping[str, Any]) -> Parsed:
    detail_type = message.get("detail-type")
    if not isinstance(detail_type, str):
        raise BadPayload("detail-type: expected a string")
    event_id = message.get("id")
    key = event_id if isinstance(event_id, str) and event_id else body_hash(message)
    occurred = parse_timestamp(message.get("time"))
    region = message.get("region") if isinstance(message.get("region"), str) else None
    base = {"key": key, "event_type": detail_type, "occurred_at": occurred, "region": region}
    norm = _norm(detail_type)
    if norm not in HANDLED:
        return Parsed(kind="ignored", reason=f"detail-type {detail_type!r} is not handled", **base)
    detail = message.get("detail")
    if not isinstance(detail, Mapping):
        raise BadPayload("detail: expected an object")
    if norm == CONFIG_ITEM:
        # The detail is the notification SNS delivers: same parse, same key.
        parsed = parse_config(detail)
        return replace(parsed, region=parsed.region or region)
    if occurred is None:
        raise BadPayload("time: missing or not a timestamp")
    if norm == AMI_CHANGE:
        return _parse_ami(message, detail, base)

    if norm == STATE_CHANGE:
        raw_id = _detail_get(detail, "instance-id")
        ids = (
            [instance_id(raw_id, "detail.instance-id")] if raw_id is not None else _arn_ids(message)
        )
        if not ids:
            raise BadPayload("detail.instance-id: missing")
        state = mapping.normalize_state(detail.get("state"))
        if state is None:
            raise BadPayload("detail.state: missing")
        version = make_version(occurred, mapping.state_rank(state))
        return Parsed(kind="state", version=version, instance_ids=(ids[0],), state=state, **base)

    if norm == TAG_CHANGE:
        if str(detail.get("service")).lower() != "ec2" or detail.get("resource-type") != "instance":
            return Parsed(kind="ignored", reason="tag change on a non-instance resource", **base)
        ids = _arn_ids(message)
        if not ids:
            raise BadPayload("resources: no instance ARN")
        return Parsed(
            kind="fetch", version=make_version(occurred, 0), instance_ids=tuple(ids), **base
        )

    ec2 = detail.get("eventSource") == "ec2.amazonaws.com" or message.get("source") == "aws.ec2"
    return _parse_api_call(detail, base, detail_type, ec2)


def _cloudtrail_key(record: Mapping[str, Any], fallback: str) -> str:
    """A call's dedup key on every route: its CloudTrail ``eventID``."""
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id.strip():
        return "cloudtrail:" + event_id.strip()
    return fallback


def _parse_record(record: Mapping[str, Any]) -> Parsed:
    """A CloudTrail record from a log file or a CloudWatch Logs delivery."""
    occurred = parse_timestamp(record.get("eventTime"))
    if occurred is None:
        raise BadPayload("eventTime: missing or not a timestamp")
    region = record.get("awsRegion")
    base = {
        "key": body_hash(record),
        "event_type": "",
        "occurred_at": occurred,
        "region": region if isinstance(region, str) else None,
    }
    ec2 = record.get("eventSource") == "ec2.amazonaws.com"
    return _parse_api_call(record, base, "CloudTrail record", ec2)


def _parse_api_call(
    detail: Mapping[str, Any], base: dict[str, Any], label: str, ec2: bool
) -> Parsed:
    """An API call (EventBridge ``detail`` or a bare record): which instances
    it changed; they are re-fetched."""
    name = detail.get("eventName")
    source = detail.get("eventSource")
    base["event_type"] = f"{label}/{name or detail.get('eventType')}"
    base["key"] = _cloudtrail_key(detail, base["key"])
    if detail.get("eventType") == "AwsCloudTrailInsight":
        return Parsed(kind="ignored", reason="CloudTrail Insights event (no API call)", **base)
    if not ec2:
        return Parsed(kind="ignored", reason=f"CloudTrail call to {source!r} is not EC2", **base)
    if name not in API_CALLS:
        return Parsed(kind="ignored", reason=f"EC2 API call {name!r} is not handled", **base)
    if detail.get("errorCode"):
        return Parsed(kind="ignored", reason=f"{name} failed: {detail.get('errorCode')}", **base)
    ids, states = _cloudtrail_ids(name, detail)
    if not ids:
        return Parsed(kind="ignored", reason=f"{name} names no instance", **base)
    when = parse_timestamp(detail.get("eventTime")) or base["occurred_at"]
    return Parsed(
        kind="fetch",
        version=make_version(when, 0),
        instance_ids=tuple(ids),
        known_states=states,
        **base,
    )


def _parse_ami(
    message: Mapping[str, Any], detail: Mapping[str, Any], base: dict[str, Any]
) -> Parsed:
    """``EC2 AMI State Change``: ``detail.ImageId`` (else the image ARN) and
    ``detail.State``."""
    raw = _detail_get(detail, "ImageId")
    if raw is None:
        arns = [a for a in message.get("resources") or [] if isinstance(a, str)]
        found = [m.group(1) for m in map(_ARN_IMAGE.search, arns) if m]
        raw = found[0] if found else None
    ami = image_id(raw, "detail.ImageId")
    state = mapping.normalize_state(_detail_get(detail, "State"))
    if state not in AMI_RANK:
        raise BadPayload(f"detail.State: not an AMI state: {_detail_get(detail, 'State')!r}")
    version = make_version(base["occurred_at"], AMI_RANK[state])
    reason = _detail_get(detail, "ErrorMessage")
    return Parsed(
        kind="image",
        version=version,
        image_ids=(ami,),
        state=state,
        deleted=state == "deregistered",
        reason=reason if isinstance(reason, str) else "",
        **base,
    )


def _cloudtrail_ids(name: str, detail: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    request = detail.get("requestParameters")
    response = detail.get("responseElements")
    request = request if isinstance(request, Mapping) else {}
    response = response if isinstance(response, Mapping) else {}
    ids: list[str] = []
    states: dict[str, str] = {}
    if name in ("CreateTags", "DeleteTags"):
        for item in _items(request.get("resourcesSet")):
            rid = item.get("resourceId")
            if isinstance(rid, str) and rid.strip().startswith("i-"):
                ids.append(instance_id(rid, "detail.requestParameters.resourcesSet"))
    elif name == "ModifyInstanceAttribute":
        ids.append(instance_id(request.get("instanceId"), "detail.requestParameters.instanceId"))
    else:
        for item in _items(request.get("instancesSet")):
            if item.get("instanceId"):
                ids.append(instance_id(item["instanceId"], "detail.requestParameters.instancesSet"))
        for item in _items(response.get("instancesSet")):
            if not item.get("instanceId"):
                continue
            iid = instance_id(item["instanceId"], "detail.responseElements.instancesSet")
            ids.append(iid)
            state = item.get("currentState") or item.get("instanceState") or {}
            name_ = mapping.normalize_state(
                state.get("name") if isinstance(state, Mapping) else None
            )
            if name_:
                states[iid] = name_
    return list(dict.fromkeys(ids)), states


# -- build ---------------------------------------------------------------------
def _status_only(iid: str, state: str, parsed: Parsed, version: str) -> Change:
    if state == "terminated":
        return Change(Kind.HOST, Op.DELETE, iid, {}, version=version, source_ref=parsed.key)
    fields = {"status": mapping.host_status(state)}
    return Change(Kind.HOST, Op.UPSERT, iid, fields, version=version, source_ref=parsed.key)


def _fetched(
    iid: str, lookup: Lookup, parsed: Parsed, state: str | None, version: str
) -> list[Change]:
    instance = lookup.instances[iid]
    return mapping.instance_changes(
        instance,
        instance_id=iid,
        state=state,
        version=version,
        source_ref=parsed.key,
        owner=lookup.owners.get(iid) or None,
        types=lookup.types,
        images=lookup.images,
    )


def _dedupe(changes: list[Change]) -> list[Change]:
    """Several instances of one message share their account, type and AMI:
    keep one change per object."""
    seen: set[tuple[Kind, Op, str]] = set()
    out = []
    for change in changes:
        key = (change.kind, change.op, change.external_id)
        if key not in seen:
            seen.add(key)
            out.append(change)
    return out


def build(parsed: Parsed, lookup: Lookup | None) -> tuple[list[Change], str | None]:
    """Changes for a parsed message, given the re-fetched ``lookup`` (which
    must cover ``parsed.needs()``); returns (changes, ignored reason)."""
    lookup = lookup or Lookup()
    if parsed.kind == "state":
        (iid,) = parsed.instance_ids
        state = parsed.state
        if state == "terminated" or iid not in lookup.instances:
            return [_status_only(iid, state or "", parsed, parsed.version)], None
        # The status is the event's: DescribeInstances is eventually consistent
        # and may lag behind the event, and a lagging state must not be stamped
        # with the event's version. Only shutting-down/terminated are taken
        # from the re-fetch, as they can only be newer.
        fetched = mapping.normalize_state((lookup.instances[iid].get("State") or {}).get("Name"))
        if fetched in TERMINAL:
            state = fetched
        return _fetched(iid, lookup, parsed, state, parsed.version), None

    if parsed.kind == "fetch":
        if parsed.deleted:
            return [
                _status_only(i, "terminated", parsed, parsed.version) for i in parsed.instance_ids
            ], None
        changes: list[Change] = []
        missing: list[str] = []
        for iid in parsed.instance_ids:
            if iid in lookup.instances:
                state = mapping.normalize_state(
                    (lookup.instances[iid].get("State") or {}).get("Name")
                )
                changes.extend(_fetched(iid, lookup, parsed, state, parsed.version))
            elif iid in parsed.known_states:
                changes.append(_status_only(iid, parsed.known_states[iid], parsed, parsed.version))
            else:
                missing.append(iid)
        if not changes:
            return [], "instance(s) not found: " + ", ".join(missing)
        return _dedupe(changes), None

    if parsed.kind == "config":
        changes = []
        for item in parsed.items:
            changes.extend(config_item_changes(item, parsed))
        return _dedupe(changes), None
    if parsed.kind == "image":
        return [_image_change(parsed, lookup)], None
    return [], parsed.reason or "nothing to do"


def _image_change(parsed: Parsed, lookup: Lookup) -> Change:
    """An AMI's new state: deregistered deletes it; available/failed
    upsert what DescribeImages says, with the event's state (the API may
    still show the state before the event's)."""
    (ami,) = parsed.image_ids
    if parsed.deleted:
        return Change(Kind.IMAGE, Op.DELETE, ami, {}, version=parsed.version, source_ref=parsed.key)
    found = lookup.images.get(ami)
    fields = mapping.image_fields(found) if found else {}
    fields["status"] = parsed.state
    return Change(Kind.IMAGE, Op.UPSERT, ami, fields, version=parsed.version, source_ref=parsed.key)


def region_mismatch(parsed: Parsed, region: str | None) -> str | None:
    if parsed.region and region and parsed.region.strip() != region:
        return f"event for region {parsed.region!r}, provider is {region!r}"
    return None


def needed_ids(parsed_messages: Sequence[Parsed]) -> list[str]:
    """Union of the ids many messages need: one re-fetch for a whole batch."""
    return list(dict.fromkeys(i for p in parsed_messages for i in p.needs()))


def needed_images(parsed_messages: Sequence[Parsed]) -> list[str]:
    """Union of the AMI ids AMI events need re-fetched."""
    return list(dict.fromkeys(i for p in parsed_messages for i in p.image_needs()))
