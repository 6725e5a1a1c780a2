"""Which change field names which other object: one table for ``sync.apply``.

A reference is an external id; apply resolves it to the referenced row's pk
(inserting a placeholder row for an id it has not seen yet, so a change never
fails because its flavor is late) and stores that pk in ``attr``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sync.apply import bulk
from sync.changes import Change, Kind, Op
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudImage,
    CloudProject,
    CloudProvider,
    SyncedModel,
)

__all__ = ["REFERENCES", "Reference", "references_of", "resolve"]


@dataclass(frozen=True)
class Reference:
    """The change ``field`` of a ``kind`` names a ``model`` row by external id;
    the row's pk is stored in ``attr`` (and the raw id in ``raw``, if set)."""

    kind: Kind
    field: str
    model: type[SyncedModel]
    attr: str
    raw: str = ""

    def values(self, value: Any, pks: dict[str, int]) -> dict[str, Any]:
        """The model attribute values a change's ``value`` of this field sets."""
        out = {self.attr: pks[str(value)] if value else None}
        if self.raw:
            out[self.raw] = str(value or "")
        return out


REFERENCES: tuple[Reference, ...] = (
    Reference(Kind.HOST, "flavor", CloudFlavor, "cloudflavor_id"),
    Reference(Kind.HOST, "image", CloudImage, "image_id", raw="image_ref"),
    Reference(Kind.HOST, "project", CloudProject, "project_id"),
    # A port's host is a claim; its attachment is decided on flush (sync.apply.addresses).
    Reference(Kind.HOST_IP, "host", CloudHost, "claimed_host_id"),
)


def references_of(kind: Kind) -> dict[str, Reference]:
    """The references a change of ``kind`` may carry, by change field."""
    return {ref.field: ref for ref in REFERENCES if ref.kind == kind}


def resolve(
    provider: CloudProvider, refs: dict[str, Reference], changes: Iterable[Change],
    known: dict[type[SyncedModel], dict[str, int]] | None = None,
) -> dict[str, dict[str, int]]:
    """Change field -> {external id: pk} of every id the upserts name
    (placeholders inserted for unknown ones); ``known``: pks this apply has
    read already, by model."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for change in changes:
        if change.op != Op.UPSERT:
            continue
        for name in refs:
            if change.fields.get(name):
                wanted[name].add(str(change.fields[name]))
    out = {}
    for name, ids in wanted.items():
        model = refs[name].model
        have = (known or {}).get(model, {})
        found = {i: have[i] for i in ids if i in have}
        rest = ids.difference(found)
        if rest:
            found.update(bulk.ref_ids(provider, model, rest))
        out[name] = found
    return out
