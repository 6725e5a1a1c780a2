"""Driver tests. Helpers shared by the OpenStack notification tests live here
so each test module reads as "message in, changes out". The driver module is
imported lazily: every test module of this package imports this file, and
the AWS/inventory tests must not depend on the OpenStack event side."""

from __future__ import annotations

import json
from typing import Any

from sync.changes import Change, Kind, Op
from sync.drivers.base import Translation


def run(body: Any) -> list[Translation]:
    """The whole event path for one received body: split -> describe ->
    translate, checking the invariants every translation must keep."""
    from sync.drivers.openstack.notifications import describe, split, translate

    out = []
    for message in split(body):
        info = describe(message)
        result = translate(message)
        # ignored <=> no changes: a handled event always says what it did
        assert (result.ignored is None) == bool(result.changes), result
        for change in result.changes:
            assert change.source_ref == info.key, change
            assert isinstance(change.version, str)
        out.append(result)
    return out


def changes(body: Any) -> list[Change]:
    """All changes of a body (asserting it was not ignored)."""
    results = run(body)
    assert results and all(r.ignored is None for r in results), [r.ignored for r in results]
    return [c for r in results for c in r.changes]


def one(found: list[Change], kind: Kind, op: Op = Op.UPSERT) -> Change:
    """The single change of a kind/op in a list."""
    matching = [c for c in found if c.kind == kind and c.op == op]
    assert len(matching) == 1, matching
    return matching[0]


def envelope(message: Any) -> dict[str, str]:
    """Wrap like oslo.messaging's ``messagingv2`` driver does."""
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


def listener_shape(v1: dict[str, Any]) -> dict[str, Any]:
    """The NotificationListener view of a wire-v1 message: context keys move
    to ``ctxt``, id and time to ``metadata``."""
    ctxt = {k[len("_context_") :]: v for k, v in v1.items() if k.startswith("_context_")}
    return {
        "ctxt": ctxt,
        "publisher_id": v1.get("publisher_id"),
        "event_type": v1["event_type"],
        "payload": v1["payload"],
        "metadata": {"message_id": v1["message_id"], "timestamp": v1["timestamp"]},
    }


class Fold:
    """A minimal model of apply's ordering rule (newer version wins per
    object; deletes are tombstones) used to check that translated sequences
    converge whatever order they arrive in."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, change: Change) -> None:
        key = (str(change.kind), change.external_id)
        row = self.rows.setdefault(key, {"_version": "", "_deleted": False, "_fv": {}})
        for name, value in change.fields.items():
            if change.version >= row["_fv"].get(name, ""):
                row[name], row["_fv"][name] = value, change.version
        if change.op == Op.DELETE and change.version >= row["_version"]:
            row["_deleted"] = True
        row["_version"] = max(row["_version"], change.version)

    def get(self, kind: Kind, external_id: str) -> dict[str, Any]:
        return self.rows[(str(kind), external_id)]
