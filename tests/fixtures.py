"""Load the unedited upstream sample notifications for tests.

The samples are part of the repository, in ``tests/fixtures/`` (sources and
licences in its README), so a fresh clone needs nothing beside it. They are
used as they are; variations (message ids, timestamps, envelopes) are built
here in test code, never by editing the files.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "FIXTURES",
    "fill_placeholders",
    "fixture_path",
    "load_json",
    "load_nova_versioned",
    "load_notigen",
    "resolve_refs",
    "stacktach_event_types",
    "with_wire_fields",
]

# Deliberately no environment override: a test run must read the samples the
# repository holds, never a copy somewhere else.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_path(relpath: str | Path) -> Path:
    """Absolute path of a fixture inside ``FIXTURES``; refuses paths that
    climb out of it, so no test can read outside the repository by accident."""
    path = (FIXTURES / relpath).resolve()
    if not path.is_relative_to(FIXTURES):
        raise ValueError(f"fixture path {relpath!r} leaves {FIXTURES}")
    return path


def load_json(relpath: str | Path) -> Any:
    """Parse one fixture file (path relative to the fixtures folder)."""
    with open(fixture_path(relpath), encoding="utf-8") as fh:
        return json.load(fh)


# -- Nova versioned samples: $ref resolution (nova/tests/json_ref.py) -------


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Deep-merge ``overrides`` into ``base``: dicts recursively, everything
    else (lists included) replaced."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def resolve_refs(obj: Any, base_dir: Path) -> Any:
    """Resolve ``{"$ref": "file.json#", ...overrides}`` like Nova does: load the
    referenced file relative to the referencing file, resolve its own refs
    (relative to *its* folder), then deep-merge the resolved sibling keys."""
    if isinstance(obj, list):
        return [resolve_refs(item, base_dir) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if "$ref" not in obj:
        return {key: resolve_refs(value, base_dir) for key, value in obj.items()}
    ref = obj["$ref"]
    file_part, _, fragment = ref.partition("#")
    if fragment:
        raise NotImplementedError(f"JSON pointer fragments are not supported: {ref!r}")
    target = (base_dir / file_part).resolve()
    if not target.is_relative_to(FIXTURES):
        raise ValueError(f"$ref {ref!r} leaves {FIXTURES}")
    with open(target, encoding="utf-8") as fh:
        resolved = resolve_refs(json.load(fh), target.parent)
    overrides = resolve_refs({k: v for k, v in obj.items() if k != "$ref"}, base_dir)
    _merge(resolved, overrides)
    return resolved


def load_nova_versioned(name: str) -> dict[str, Any]:
    """A ``nova-versioned/`` sample with every ``$ref`` resolved."""
    path = fixture_path(Path("nova-versioned") / name)
    with open(path, encoding="utf-8") as fh:
        return resolve_refs(json.load(fh), path.parent)


def with_wire_fields(
    message: dict[str, Any], *, message_id: str | None = None, timestamp: str | None = None
) -> dict[str, Any]:
    """Add what the wire adds to a Nova sample (``message_id``, ``timestamp``)."""
    out = dict(message)
    out["message_id"] = message_id or str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(message)))
    out["timestamp"] = timestamp or "2012-10-29 13:42:12.000000"
    return out


# -- StackTach notigen templates ------------------------------------------

PLACEHOLDER = re.compile(r"\[\[\[\[([A-Za-z0-9_]+)\]\]\]\]")
NOTIGEN_BASE = datetime(2014, 1, 1, 12, 0, 0, tzinfo=UTC)


def fill_placeholders(text: str, time_map: dict[str, list[int]]) -> str:
    """Replace notigen placeholders with deterministic, well-formed values:
    ``UUID_n`` -> a UUID, ``XUUID_n`` -> 32 hex chars, ``V4_n``/``V6_n`` ->
    documentation addresses, ``DT_n`` -> base time + the template's
    ``time_map`` offset (days, seconds, microseconds), anything else ->
    ``<name>-value``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        kind, _, num = name.rpartition("_")
        if kind == "UUID":
            return str(uuid.uuid5(uuid.NAMESPACE_OID, name))
        if kind == "XUUID":
            return uuid.uuid5(uuid.NAMESPACE_OID, name).hex
        if kind == "V4":
            return f"192.0.2.{int(num) + 1}"
        if kind == "V6":
            return f"2001:db8::{int(num) + 1:x}"
        if kind == "DT":
            days, seconds, micros = time_map.get(match.group(0), (0, 0, 0))
            dt = NOTIGEN_BASE + timedelta(days=days, seconds=seconds, microseconds=micros)
            return dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"{name}-value"

    return PLACEHOLDER.sub(value, text)


def load_notigen(name: str) -> list[dict[str, Any]]:
    """The message sequence of one notigen template (metadata element dropped),
    placeholders filled."""
    raw = fixture_path(Path("nova-legacy/stacktach-notigen-templates") / name).read_text("utf-8")
    meta = json.loads(raw)[0]
    return json.loads(fill_placeholders(raw, meta.get("time_map", {})))[1:]


# -- StackTach schema samples (payload only) ------------------------------


def stacktach_event_types() -> dict[str, str]:
    """file name -> event type, as documented in the fixtures README
    (the samples are payloads only; the README row names the event)."""
    readme = fixture_path("README.md").read_text("utf-8")
    rows = re.findall(
        r"^\| stacktach-notification-schemas-samples/(\S+) \|.*payload only \(no envelope\) "
        r"for (\S+) \|$",
        readme,
        re.MULTILINE,
    )
    return dict(rows)
