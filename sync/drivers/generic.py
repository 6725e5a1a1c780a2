"""The ``generic`` driver: normalized changes POSTed by any producer.

For platforms without a driver of their own (a home-grown virtualisation
layer, a CMDB export, a script walking a hypervisor): the producer does the
translation itself and sends cloudsync's own vocabulary, a JSON document
validated by a published JSON Schema (``generic_schema.json``, served at
``/cloud-sync/schema/generic.json``; format in ``docs/generic.md``):

* a *changes* document ``{"id"?, "changes": [{kind, op, id, version, fields}]}``
  becomes a list of ``Change`` objects applied like any event;
* a *snapshot* document ``{"id"?, "snapshot": true, "kinds", "scopes"?,
  "taken_at"?, "objects": [{kind, id, version, fields}]}`` is a complete
  inventory: it becomes ``Translation(snapshot=...)`` and the core reconciles
  it as a SyncRun of kind *snapshot*, with the deletion safety and mass-delete
  guard of a full sync (``sync.ingest._process_snapshot``).

Why a schema rather than hand-written checks: producers are written by other
teams in other languages; one published schema lets them validate before
sending, and the same file here yields error messages with a JSON path
(``$.changes[2].fields.cores: 'four' is not of type 'integer', 'null'``), which
the inbox records on the failed event. Validation is all-or-nothing: a
document with one bad change is rejected whole, so a producer never has to
guess which half was applied.

Versions: an ISO 8601 timestamp becomes ``make_version(<UTC datetime>)`` and
an integer ``make_version(<int>)``, so they compare correctly as strings.
The two forms do not compare meaningfully with each other, so one document
must use one form (a provider should too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from sync.changes import Change, Kind, Op, Source, make_version, parse_timestamp
from sync.drivers.base import (
    BadPayload,
    ConfigError,
    Driver,
    EventInfo,
    Snapshot,
    Translation,
    body_hash,
)

__all__ = [
    "SCHEMA_PATH",
    "GenericDriver",
    "document_errors",
    "load_schema",
    "validate_document",
]

SCHEMA_PATH = Path(__file__).with_name("generic_schema.json")
MAX_REPORTED_ERRORS = 10
# Custom keyword in the schema: a human message replacing the validator's own
# (which for a regex or an anyOf says little to the producer).
ERROR_MESSAGE_KEY = "x-error-message"


@cache
def load_schema() -> dict[str, Any]:
    """The generic document schema (Draft 2020-12), parsed once per process."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> Draft202012Validator:
    # The format checker makes "ipv4"/"ipv6" assertions (they are only
    # annotations in 2020-12 otherwise).
    return Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _message(error: ValidationError) -> str:
    custom = error.schema.get(ERROR_MESSAGE_KEY) if isinstance(error.schema, Mapping) else None
    if custom:
        return f"{error.json_path}: {custom}, got {json.dumps(error.instance, default=str)[:80]}"
    return f"{error.json_path}: {error.message}"


def _document_order(error: ValidationError) -> list[tuple[int, int, str]]:
    # Array indexes sort numerically ($.changes[2] before $.changes[10]).
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path]


def document_errors(document: Any) -> list[str]:
    """Every schema violation of ``document`` as "json path: what is wrong",
    in document order, duplicates removed (empty when valid)."""
    errors = sorted(_validator().iter_errors(document), key=_document_order)
    messages = list(dict.fromkeys(_message(e) for e in errors))
    if not messages:
        messages = _semantic_errors(document)
    return messages


_A = {"integer": "an integer", "timestamp": "a timestamp"}


def _semantic_errors(document: Mapping[str, Any]) -> list[str]:
    """What the schema cannot say: real calendar dates, one version form."""
    errors: list[str] = []
    key = "objects" if document.get("snapshot") else "changes"
    first_form: tuple[str, str] | None = None
    if "taken_at" in document and parse_timestamp(document["taken_at"]) is None:
        errors.append(f"$.taken_at: {document['taken_at']!r} is not a valid date and time")
    for kind in document.get("scopes") or {}:
        if kind not in document["kinds"]:
            # reconcile deletes only listed kinds: a scope elsewhere is a mistake
            errors.append(f"$.scopes.{kind}: {kind!r} is not one of the listed kinds")
    for index, item in enumerate(document.get(key, ())):
        path = f"$.{key}[{index}]"
        version = item["version"]
        form = "integer" if isinstance(version, int) else "timestamp"
        if form == "timestamp" and parse_timestamp(version) is None:
            errors.append(f"{path}.version: {version!r} is not a valid date and time")
        if first_form is None:
            first_form = (form, path)
        elif form != first_form[0]:
            errors.append(
                f"{path}.version: is {_A[form]} but {first_form[1]}.version is "
                f"{_A[first_form[0]]}; one document must use one version form"
            )
        launched = (item.get("fields") or {}).get("launched_at")
        if launched is not None and parse_timestamp(launched) is None:
            errors.append(f"{path}.fields.launched_at: {launched!r} is not a valid date and time")
    return errors


def validate_document(document: Any) -> Mapping[str, Any]:
    """Return the document if it is valid, else raise ``BadPayload`` listing
    the first errors (the inbox stores the message on the failed event)."""
    errors = document_errors(document)
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = len(errors) - len(shown)
        text = "invalid generic document: " + "; ".join(shown)
        if more:
            text += f" (and {more} more)"
        raise BadPayload(text)
    return document


def to_version(value: int | str) -> str:
    """An ordering key from a document version (already validated)."""
    if isinstance(value, int):
        return make_version(value)
    return make_version(parse_timestamp(value))


class GenericDriver(Driver):
    """Producer-normalized changes and pushed snapshots (see module doc)."""

    name = "generic"
    description = "Normalized changes and snapshots in cloudsync's own JSON format"

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The generic driver calls no cloud, so it takes no settings; an
        unexpected key is most likely a config meant for another driver."""
        config = super().validate_config(config)
        unknown = sorted(config)
        if unknown:
            raise ConfigError(
                {key: "unknown key: the generic driver takes no client_config" for key in unknown}
            )
        return config

    def describe(self, message: Any) -> EventInfo:
        """Dedup key: the document's ``id`` when it has a usable one, else a
        hash of the body (identical documents are the same event)."""
        if not isinstance(message, Mapping):
            return EventInfo(key=body_hash(message))
        doc_id = message.get("id")
        key = doc_id if isinstance(doc_id, str) and doc_id.strip() else body_hash(message)
        if message.get("snapshot") is True:
            taken = message.get("taken_at")
            return EventInfo(
                key=key,
                event_type="generic.snapshot",
                occurred_at=parse_timestamp(taken) if isinstance(taken, str) else None,
            )
        return EventInfo(key=key, event_type="generic.changes")

    def translate(self, message: Any, config: Mapping[str, Any]) -> Translation:
        """Validate the whole document, then map it 1:1 onto Changes."""
        document = validate_document(message)
        ref = self.describe(document).key
        if document.get("snapshot"):
            return Translation(snapshot=self._snapshot(document))
        changes = [
            Change(
                kind=Kind(item["kind"]),
                op=Op(item["op"]),
                external_id=item["id"],
                fields=dict(item.get("fields") or {}) if item["op"] == Op.UPSERT else {},
                version=to_version(item["version"]),
                source=Source.EVENT,
                source_ref=ref,
            )
            for item in document["changes"]
        ]
        if not changes:
            return Translation(ignored="the document holds no changes")
        return Translation(changes=changes)

    def _snapshot(self, document: Mapping[str, Any]) -> Snapshot:
        scopes = document.get("scopes")
        taken_at: datetime | None = None
        if "taken_at" in document:
            taken_at = parse_timestamp(document["taken_at"])

        # Built eagerly (the document is in memory anyway): anything wrong
        # surfaces here, in translate, never halfway through a reconcile.
        upserts = [
            Change(
                kind=Kind(item["kind"]),
                op=Op.UPSERT,
                external_id=item["id"],
                fields=dict(item.get("fields") or {}),
                version=to_version(item["version"]),
                source=Source.FULL_SYNC,
            )
            for item in document["objects"]
        ]
        return Snapshot(
            changes=upserts,
            kinds=frozenset(Kind(k) for k in document["kinds"]),
            scopes=(
                {Kind(k): frozenset(ids) for k, ids in scopes.items()}
                if scopes is not None
                else None
            ),
            started_at=taken_at,
        )
