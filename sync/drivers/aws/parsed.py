"""What a message means, independent of its wire shape (shared by the
EventBridge/CloudTrail parser in ``events`` and the AWS Config one in
``awsconfig``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.drivers.base import BadPayload

__all__ = ["Parsed", "image_id", "instance_id"]

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,32}$")
_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,32}$")


@dataclass(frozen=True, slots=True)
class Parsed:
    """One message, understood. ``kind``: state, fetch (re-fetch the ids),
    config (map ``items`` directly), image (an AMI's state: ``image_ids``,
    ``state``), sns, or ignored (``reason``)."""

    kind: str
    key: str
    event_type: str = ""
    occurred_at: datetime | None = None
    version: str = ""
    region: str | None = None
    instance_ids: tuple[str, ...] = ()
    state: str | None = None  # state events
    known_states: Mapping[str, str] = field(default_factory=dict)  # CloudTrail currentState
    items: tuple[Mapping[str, Any], ...] = ()  # Config items
    image_ids: tuple[str, ...] = ()  # AMI events
    deleted: bool = False
    reason: str = ""

    def needs(self) -> tuple[str, ...]:
        """Instance ids to re-fetch before ``build``."""
        if self.kind == "state":
            return () if self.state == "terminated" else self.instance_ids
        if self.kind == "fetch" and not self.deleted:
            return self.instance_ids
        return ()

    def image_needs(self) -> tuple[str, ...]:
        """AMI ids to re-fetch (DescribeImages) before ``build``."""
        return self.image_ids if self.kind == "image" and not self.deleted else ()


def instance_id(value: Any, where: str) -> str:
    """A normalized instance id or ``BadPayload`` naming the field. Stripped
    and lower-cased because real samples carry a leading space (AWS docs);
    validated so that garbage never reaches an EC2 filter."""
    return _aws_id(value, where, _INSTANCE_ID, "instance id")


def image_id(value: Any, where: str) -> str:
    """A normalized AMI id (same rules: it ends up in a DescribeImages filter)."""
    return _aws_id(value, where, _IMAGE_ID, "image id")


def _aws_id(value: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadPayload(f"{where}: missing {what}")
    text = value.strip().lower()
    if not pattern.match(text):
        raise BadPayload(f"{where}: not an {what}: {value!r}")
    return text
