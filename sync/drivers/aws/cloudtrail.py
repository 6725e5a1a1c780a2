"""CloudTrail delivered as log records rather than through EventBridge.

Two real shapes carry CloudTrail *records* (what EventBridge's ``AWS API Call
via CloudTrail`` has as its ``detail``):

* a **CloudTrail log file** ``{"Records": [record, ...]}`` (the gunzipped
  ``.json.gz`` object a trail writes to S3; a forwarder — e.g. a Lambda on
  the bucket's ``ObjectCreated`` notification — posts its content);
* a **CloudWatch Logs subscription** delivery, for a trail that sends to a
  log group: ``{"awslogs": {"data": base64(gzip(json))}}`` (what a
  subscription filter hands a Lambda, posted as is), whose decoded JSON is
  ``{"messageType": "DATA_MESSAGE", "logGroup", "logEvents": [{"id",
  "timestamp", "message": "<one CloudTrail record as JSON text>"}, ...]}``.
  The decoded document is accepted too, and ``CONTROL_MESSAGE`` (sent to
  check that the destination is reachable) is ignored.

``split_logs`` yields each record on its own, so every record is its own
inbox event keyed by its ``eventID`` (``cloudtrail:<eventID>``, the same key
the EventBridge route gives the same call: a call delivered both ways is
recorded once). ``events.parse`` treats a record exactly like the
``detail`` of an EventBridge API-call event. A log event whose message is
not a JSON object (a log group that is not CloudTrail's) is yielded as
``{"cloudwatchLogsEvent": ...}`` and fails with a reason.

Decoding happens in the worker (``split``), never in the endpoint, and the
decompressed size is capped (``MAX_DECODED_BYTES``) so that a small body
cannot inflate into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from sync.drivers.base import BadPayload

__all__ = [
    "CONTROL_MESSAGE",
    "LOG_EVENT",
    "MAX_DECODED_BYTES",
    "is_logs_delivery",
    "is_record",
    "split_logs",
]

MAX_DECODED_BYTES = 32 * 1024 * 1024
DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"
LOG_EVENT = "cloudwatchLogsEvent"  # wrapper of a log event that is not a CloudTrail record


def is_record(message: Any) -> bool:
    """A bare CloudTrail record (``eventVersion``, ``eventTime``; API calls
    add ``eventSource``/``eventName``, Insights events ``insightDetails``),
    not inside an EventBridge envelope."""
    return (
        isinstance(message, Mapping)
        and "detail-type" not in message
        and isinstance(message.get("eventVersion"), str)
        and "eventTime" in message
    )


def _is_logs_document(message: Mapping[str, Any]) -> bool:
    return message.get("messageType") in (DATA_MESSAGE, CONTROL_MESSAGE) and "logEvents" in message


def is_logs_delivery(message: Any) -> bool:
    """A body ``split_logs`` unpacks: a log file, a CloudWatch Logs
    subscription delivery (encoded or decoded)."""
    if not isinstance(message, Mapping):
        return False
    if isinstance(message.get("Records"), list) and "detail-type" not in message:
        return True
    awslogs = message.get("awslogs")
    if isinstance(awslogs, Mapping) and "data" in awslogs:
        return True
    return _is_logs_document(message)


def split_logs(message: Mapping[str, Any]) -> Iterator[Any]:
    """The records (or failing/ignored stand-ins) a delivery holds."""
    records = message.get("Records")
    if isinstance(records, list) and "detail-type" not in message:
        yield from records
        return
    if isinstance(message.get("awslogs"), Mapping):
        message = _decode(message["awslogs"].get("data"))
    if message.get("messageType") == CONTROL_MESSAGE:
        yield dict(message)  # parse ignores it: one inbox row says it arrived
        return
    events = message.get("logEvents")
    if not isinstance(events, list):
        raise BadPayload("logEvents: expected a JSON array")
    context = {k: message.get(k) for k in ("owner", "logGroup", "logStream")}
    for event in events:
        yield _log_record(event, context)


def _log_record(event: Any, context: Mapping[str, Any]) -> Any:
    text = event.get("message") if isinstance(event, Mapping) else None
    if isinstance(text, str):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if is_record(record):
            return record
    return {LOG_EVENT: event, **context}


def _decode(data: Any) -> Mapping[str, Any]:
    """``awslogs.data``: base64 of a gzip stream of one JSON document."""
    if not isinstance(data, str) or not data:
        raise BadPayload("awslogs.data: expected a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadPayload(f"awslogs.data: not base64 ({exc})") from None
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header
    try:
        text = inflater.decompress(raw, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise BadPayload(f"awslogs.data: not gzip data ({exc})") from None
    if inflater.unconsumed_tail:
        raise BadPayload(f"awslogs.data: decompresses to more than {MAX_DECODED_BYTES} bytes")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"awslogs.data: the decoded data is not JSON ({exc})") from None
    if not isinstance(document, Mapping) or not _is_logs_document(document):
        raise BadPayload("awslogs.data: not a CloudWatch Logs subscription message")
    return document
