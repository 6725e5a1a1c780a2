"""The AWS EC2 driver (``aws.ec2``, alias ``aws``).

Modules: ``config`` (client_config rules), ``events`` (EventBridge and
CloudTrail shapes, split/describe, building Changes), ``cloudtrail``
(CloudTrail log files and CloudWatch Logs deliveries -> records),
``awsconfig`` (AWS Config notifications), ``parsed`` (what a message means), ``mapping`` (EC2
objects -> Changes; the id/status/tag rules live there), ``ec2`` (boto3
clients, calls and error classification), ``inventory`` (full sync,
connection test), ``sns`` (envelopes and subscription confirmation).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sync.drivers.base import (
    BadPayload,
    Driver,
    EventInfo,
    Snapshot,
    Translation,
)

__all__ = ["AwsEc2Driver"]


class AwsEc2Driver(Driver):
    name = "aws.ec2"
    aliases = ("aws",)
    description = (
        "AWS EC2: EventBridge/CloudTrail/AWS Config events (direct, via SNS, CloudTrail logs)"
        " + boto3 full sync"
    )
    supports_full_sync = True
    supports_catch_up = False

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        from sync.drivers.aws.config import validate_config

        return validate_config(config)

    def split(self, message: Any) -> Iterator[Any]:
        from sync.drivers.aws.events import split

        return split(message)

    def describe(self, message: Any) -> EventInfo:
        from sync.drivers.aws.events import describe

        return describe(message)

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        """One message. Thin events re-fetch their instances (one
        DescribeInstances for all ids of the message)."""
        from sync.drivers.aws.cloudtrail import is_logs_delivery, split_logs
        from sync.drivers.aws.sns import is_envelope, unwrap

        inner = None
        if is_envelope(message) and message.get("Type") == "Notification":
            inner = unwrap(message)  # split() was skipped: translate what it would yield
        elif is_logs_delivery(message):
            # a CloudTrail log delivery recorded whole (failed before this
            # release understood it) and replayed: its records, as split() yields
            inner = list(split_logs(message))
        results = self.translate_batch(inner if inner is not None else [message], config)
        for result in results:
            if isinstance(result, Exception):
                raise result
        if len(results) == 1:
            return results[0]
        changes = [c for r in results for c in r.changes]
        reasons = "; ".join(r.ignored for r in results if r.ignored)
        return Translation(changes=changes, ignored=None if changes else reasons or "empty")

    def translate_batch(
        self, messages: Sequence[Any], config: Mapping[str, Any]
    ) -> list[Translation | BadPayload]:
        """Translate many messages with a single re-fetch for all their
        instance ids (for a worker that drains a batch). A message that cannot
        be understood gets its ``BadPayload`` in its slot; temporary errors
        (``AuthError``/``NetworkError``) concern the whole batch and raise."""
        from sync.drivers.aws import events, sns
        from sync.drivers.aws.ec2 import fetch_lookup, get_clients

        region = config.get("region_name") if isinstance(config, Mapping) else None
        results: list[Translation | BadPayload | events.Parsed] = []
        for message in messages:
            try:
                parsed = events.parse(message)
                reason = events.region_mismatch(parsed, region)
                if reason:
                    results.append(Translation(ignored=reason))
                elif parsed.kind == "sns":
                    results.append(sns.confirm_subscription(message, config))
                else:
                    results.append(parsed)
            except BadPayload as exc:
                results.append(exc)
        pending = [r for r in results if isinstance(r, events.Parsed)]
        wanted = events.needed_ids(pending)
        images = events.needed_images(pending)
        lookup = fetch_lookup(get_clients(config), wanted, images) if wanted or images else None
        out: list[Translation | BadPayload] = []
        for result in results:
            if isinstance(result, events.Parsed):
                try:
                    changes, ignored = events.build(result, lookup)
                    out.append(Translation(changes=changes, ignored=ignored))
                except BadPayload as exc:
                    out.append(exc)
            else:
                out.append(result)
        return out

    def list_inventory(self, config: Mapping[str, Any]) -> Snapshot:
        from sync.drivers.aws.inventory import list_inventory

        return list_inventory(config)

    def test_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        from sync.drivers.aws.inventory import test_connection

        return test_connection(config)
