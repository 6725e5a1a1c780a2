"""Every OpenStack sample notification goes through split -> describe ->
translate without an unexpected exception.

Files are enumerated from disk, so a sample added to ``tests/fixtures``
is swept automatically; upstream documentation pages kept beside the
samples (not messages) are listed in ``DOCS`` with the reason and are not
swept, and messages that must fail are listed in ``EXPECTED_BAD``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sync.changes import FIELDS, Change
from sync.drivers.base import BadPayload
from sync.drivers.openstack.notifications import describe, split, translate
from tests.fixtures import (
    FIXTURES,
    fill_placeholders,
    load_nova_versioned,
    stacktach_event_types,
    with_wire_fields,
)

FOLDERS = ("nova-versioned", "nova-legacy", "glance", "neutron", "oslo")

# Upstream documentation pages kept for reference, not messages: excluded
# from the sweep by name (test_docs_are_documents_not_samples keeps the list
# honest), so every swept file is a sample and nothing is skipped.
DOCS = {
    "glance/glance-docs/notifications.rst": "prose list of event types, no JSON example",
    "glance/glance-docs/interoperable-image-import.rst": "reStructuredText with truncated "
    "('...') examples; not parseable JSON",
}

# (file, message label) -> expected BadPayload reason: samples that really lack
# required data. The StackTach schema samples are payloads without an
# envelope (the sweep also runs them wrapped with the event type the README
# documents). As they are, the Nova instance payloads among them are what
# Ceilometer's ``raw_only`` publisher posts and go through as instance
# snapshots (sync/drivers/openstack/ceilometer.py); the scheduler payloads
# describe a request, not an instance, and have no event_type to go by.
EXPECTED_BAD = {
    (f"nova-legacy/stacktach-notification-schemas-samples/{name}", "raw"): "no event_type"
    for name in stacktach_event_types()
    if not name.startswith("compute-instance-")
}

# Versioned Nova event types that must produce changes; all others are ignored.
VERSIONED_WITH_CHANGES = {
    "compute_task.build_instances.error",
    "compute_task.migrate_server.error",
    "compute_task.rebuild_server.error",
    "flavor.create",
    "flavor.delete",
    "flavor.update",
    "instance.create.end",
    "instance.create.error",
    "instance.delete.end",
    "instance.interface_attach.end",
    "instance.interface_detach.end",
    "instance.live_migration_post_dest.end",
    "instance.pause.end",
    "instance.power_off.end",
    "instance.power_on.end",
    "instance.reboot.end",
    "instance.rebuild.end",
    "instance.rescue.end",
    "instance.resize_confirm.end",
    "instance.resize_finish.end",
    "instance.resize_revert.end",
    "instance.restore.end",
    "instance.resume.end",
    "instance.shelve.end",
    "instance.shelve_offload.end",
    "instance.shutdown.end",
    "instance.soft_delete.end",
    "instance.suspend.end",
    "instance.unpause.end",
    "instance.unrescue.end",
    "instance.unshelve.end",
    "instance.update",
}


def _files() -> list[str]:
    """Every sample file under FOLDERS (``common_payloads/`` fragments are
    swept through the samples that ``$ref`` them; ``DOCS`` are not samples)."""
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES}"
    found = []
    for folder in FOLDERS:
        for path in sorted((FIXTURES / folder).rglob("*")):
            rel = path.relative_to(FIXTURES).as_posix()
            if path.is_file() and "common_payloads" not in path.parts and rel not in DOCS:
                found.append(rel)
    return found


def _parse(path: Path) -> Any | None:
    """JSON, or JSON behind a JavaScript assignment (``var x = {...};``) as
    some sentry ``.js``/``.demo`` captures might be; None if neither."""
    text = path.read_text("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    match = re.match(r"^\s*(?:var\s+\w+\s*=|\w+\s*=)\s*(.*?);?\s*$", text, re.DOTALL)
    if match:
        try:
            return json.loads(match.group(1))
        except json.JSONDecodeError:
            pass
    return None


def _messages(rel: str) -> list[tuple[str, Any]]:
    """(label, body) pairs a fixture file holds, shaped like they arrive."""
    path = FIXTURES / rel
    if rel.startswith("nova-versioned/"):
        return [("sample", with_wire_fields(load_nova_versioned(path.name)))]
    data = _parse(path)
    assert data is not None, f"{rel} is not JSON: if it is a document, add it to DOCS with a reason"
    if "stacktach-notigen-templates" in rel:
        filled = json.loads(fill_placeholders(path.read_text("utf-8"), data[0]["time_map"]))
        return [(f"[{i}]", m) for i, m in enumerate(filled[1:], 1)]
    if "stacktach-notification-schemas-samples" in rel:
        event_type = stacktach_event_types()[path.name]
        return [("raw", data), ("wrapped", {"event_type": event_type, "payload": data})]
    if rel.startswith("oslo/sg-core/"):
        return [(name, case["testInput"]) for name, case in data.items()]
    if isinstance(data, dict) and "event_type" not in data:  # searchlight: keyed by test name
        return sorted(data.items())
    return [("file", data)]


def _check_change(change: Change, key: str) -> None:
    assert change.source_ref == key
    assert set(change.fields) <= FIELDS[change.kind]
    assert isinstance(change.version, str) and "|" in change.version


@pytest.mark.parametrize("rel", _files())
def test_fixture_goes_through_the_pipeline(rel):
    for label, body in _messages(rel):
        expected_bad = EXPECTED_BAD.get((rel, label))
        try:
            for message in split(body):
                info = describe(message)
                result = translate(message)
                assert (result.ignored is None) == bool(result.changes), result
                for change in result.changes:
                    _check_change(change, info.key)
                if rel.startswith("nova-versioned/"):
                    produced = result.ignored is None
                    assert produced == (info.event_type in VERSIONED_WITH_CHANGES), (
                        info.event_type,
                        result.ignored,
                    )
        except BadPayload as exc:
            assert expected_bad, f"{rel} {label}: unexpected BadPayload: {exc}"
            assert expected_bad in str(exc)
        else:
            assert not expected_bad, f"{rel} {label}: expected BadPayload ({expected_bad})"


def test_docs_are_documents_not_samples():
    """Each ``DOCS`` entry exists, lies in a swept folder and holds no
    message: the exclusion can neither hide a sample nor name a missing file."""
    for rel, reason in DOCS.items():
        assert reason
        assert rel.split("/", 1)[0] in FOLDERS, rel
        assert (FIXTURES / rel).is_file(), f"{rel} is listed in DOCS but missing"
        assert _parse(FIXTURES / rel) is None, f"{rel} parses as JSON now: sweep it"
    swept = set(_files())
    assert swept and not swept & set(DOCS)


def test_every_documented_versioned_sample_is_present():
    """Guard against a fixtures checkout that silently lost samples: the
    files on disk are exactly those in the README table (140; the README's
    prose says 141, its table and the folder hold 140)."""
    readme = (FIXTURES / "README.md").read_text("utf-8")
    documented = set(re.findall(r"^\| ([\w-]+\.json) \| openstack/nova \|", readme, re.MULTILINE))
    on_disk = {p.name for p in (FIXTURES / "nova-versioned").glob("*.json")}
    assert on_disk == documented
    assert len(on_disk) == 140
    assert len(stacktach_event_types()) == 37
