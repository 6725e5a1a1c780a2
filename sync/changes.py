"""The normalized change: the only thing drivers hand to the core.

Drivers translate cloud payloads into ``Change`` objects; ``sync.apply`` is the
only code that turns them into database rows. A change names its object by
kind and *external* id (unique per provider), carries only the fields it
knows (a partial update), and an ordering key (``version``) so late or
duplicated changes can be recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Change",
    "FIELDS",
    "Kind",
    "Op",
    "SYNCED_FIELDS",
    "Source",
    "make_version",
    "parse_timestamp",
]


class Kind(StrEnum):
    HOST = "host"
    FLAVOR = "flavor"
    IMAGE = "image"
    PROJECT = "project"
    HOST_IP = "host_ip"


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class Source(StrEnum):
    EVENT = "event"
    FULL_SYNC = "full_sync"
    CATCH_UP = "catch_up"


# The fields a change may carry, per kind, declared once, in the order the
# admin and the API show them: ``FIELDS``, the models' ``synced_fields`` (and
# through them the admin, the API serializers and filtersets) derive from
# these. References (``flavor``, ``image``, ``project``, ``host``) are external
# ids; apply resolves them (``sync.apply.references``), creating placeholder
# rows for ids it has not seen yet.
SYNCED_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.HOST: (
        "hostname",  # display name / Name tag
        "status",  # sync.choices.HostStatus value
        "flavor",  # external flavor id
        "image",  # external image id (also kept raw as image_ref)
        "project",  # external project id
        "hypervisor",  # compute host name
        "tags",  # list[str]
        "metadata",  # dict[str, str]
        "addresses",  # list of address dicts: the host's port-less IP set
        "port_ids",  # list[str]: the host's complete set of ports (others detach)
        "launched_at",  # ISO timestamp or None
    ),
    Kind.FLAVOR: ("name", "cores", "memory", "disk", "extra_specs", "is_public"),
    Kind.IMAGE: (
        "name",
        "status",
        "os_distro",
        "os_version",
        "architecture",
        "min_disk",
        "min_ram",
        "visibility",
    ),
    Kind.PROJECT: ("name", "domain", "enabled"),
    # One host_ip object is one network attachment (a Neutron port, an AWS
    # ENI, a floating IP): external_id is its id; ``addresses`` is the whole
    # set of addresses it carries; ``host`` the external host id (None when
    # detached); ``port_id`` lets a floating IP find its host through a port.
    Kind.HOST_IP: ("host", "port_id", "addresses"),
}
FIELDS: dict[Kind, frozenset[str]] = {
    kind: frozenset(names) for kind, names in SYNCED_FIELDS.items()
}

# An address dict in ``addresses``:
#   {"address": "10.0.0.5", "kind": "fixed"|"floating", "mac": "fa:16:..." (opt),
#    "version": 4|6 (opt, derived from the address when missing),
#    "port_id": "..." (opt, host addresses only)}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse the timestamp formats clouds send (ISO 8601 with or without zone,
    OpenStack's ``2012-05-08 20:23:48.028195``). Naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def make_version(*parts: datetime | int | str | None) -> str:
    """Build an ordering key that compares correctly as a plain string.

    Datetimes become fixed-width UTC timestamps, integers zero-padded numbers;
    parts are joined with ``|``. Keys built from the same sequence of part
    types compare like the tuples they encode; ``""`` sorts before all.
    """
    out: list[str] = []
    for part in parts:
        if part is None:
            out.append("0000-00-00T00:00:00.000000")
        elif isinstance(part, datetime):
            dt = part if part.tzinfo else part.replace(tzinfo=UTC)
            out.append(dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"))
        elif isinstance(part, int):
            out.append(f"{part:012d}")
        else:
            out.append(str(part))
    return "|".join(out)


@dataclass(frozen=True, slots=True)
class Change:
    """One normalized change to one inventory object."""

    kind: Kind
    op: Op
    external_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    source: Source = Source.EVENT
    source_ref: str = ""

    def stamped(self, source: Source, source_ref: str) -> Change:
        """This change attributed to ``source``/``source_ref`` (a run's
        listing): a copy, without validating again what was validated."""
        out = object.__new__(Change)
        for name in ("kind", "op", "external_id", "fields", "version"):
            object.__setattr__(out, name, getattr(self, name))
        object.__setattr__(out, "source", source)
        object.__setattr__(out, "source_ref", source_ref)
        return out

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "source", Source(self.source))
        if not isinstance(self.external_id, str) or not self.external_id.strip():
            raise ValueError(f"{self.kind} change needs a non-empty external id")
        unknown = set(self.fields) - FIELDS[self.kind]
        if unknown:
            raise ValueError(
                f"unknown {self.kind} field(s): {', '.join(sorted(unknown))}"
            )
