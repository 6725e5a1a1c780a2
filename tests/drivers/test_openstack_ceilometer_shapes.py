"""Issue 18's Ceilometer shapes at the driver level: the ``notifier://``
publisher's event batches (built by Ceilometer's own publisher) and events
without ``raw`` for images, ports, floating IPs and projects (traits built by
Ceilometer's converter with its default event definitions, from upstream
Glance, Neutron and Keystone notifications)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sync.changes import Kind, Op
from sync.drivers.base import BadPayload
from sync.drivers.openstack.notifications import describe, split, translate
from tests.drivers import listener_shape, run
from tests.drivers.ceilometer_notifier import as_listener, as_wire, publish
from tests.drivers.test_openstack_ceilometer import published
from tests.fixtures import fixture_path, load_json, load_notigen

pytest.importorskip("ceilometer.event.converter")

IMAGES = "glance/searchlight/images.json"
PORT_CREATE = "neutron/designate/port.create.end.json"
PORT_DELETE = "neutron/designate/port.delete.end.json"
FLOATINGIPS = "neutron/searchlight/floatingips.json"
KEYSTONE_DOC = "keystone/keystone-docs/event_notifications.rst"
_RST_BLOCK = re.compile(r"^\.\. code-block:: javascript\n\n(.*?)(?=^\S)", re.S | re.M)


def rst_blocks(rel: str) -> list[Any]:
    """The ``code-block:: javascript`` blocks of an rst doc that parse as JSON."""
    out = []
    for block in _RST_BLOCK.findall(fixture_path(Path(rel)).read_text()):
        try:
            out.append(json.loads(block))
        except ValueError:
            continue
    return out


def project_created() -> dict[str, Any]:
    """Keystone's documented ``identity.project.created`` (CADF + resource_info)."""
    return next(
        b for b in rst_blocks(KEYSTONE_DOC) if b["event_type"] == "identity.project.created"
    )


def glance(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(load_json(IMAGES)[event_type])


def modern_delete(create: dict[str, Any], resource: str) -> dict[str, Any]:
    """A ``<resource>.delete.end`` as Neutron sends it since it adds the
    resource to the delete payload (neutron/api/v2/base.py ``_delete``:
    ``{<resource>_id: id, <resource>: view}``), from an upstream create."""
    message = copy.deepcopy(create)
    body = message["payload"][resource]
    message["event_type"] = f"{resource}.delete.end"
    message["payload"] = {f"{resource}_id": body["id"], resource: body}
    if "metadata" in message:
        message["metadata"]["message_id"] += "-delete"
    else:
        message["message_id"] += "-delete"
    return message


def without_raw(message: dict[str, Any]) -> dict[str, Any]:
    return published(message, store_raw=False)


# -- notifier:// batches ------------------------------------------------------------
SEQUENCE = "compute.instance.create.start_23.json"


@pytest.fixture(scope="module")
def notifier_batch() -> dict[str, Any]:
    """One notifier notification holding a create sequence: with raw, and
    a Glance image event without raw."""
    events = [published(m, store_raw=True) for m in load_notigen(SEQUENCE)]
    events.append(without_raw(glance("image.create")))
    (notification,) = publish([events])
    return notification


def test_notifier_notification_is_what_ceilometer_sends(notifier_batch: dict[str, Any]) -> None:
    assert notifier_batch["event_type"] == "event"
    assert notifier_batch["priority"] == "SAMPLE"
    assert notifier_batch["publisher_id"] == "telemetry.publisher.ceilometer-agent-1"
    assert all("message_signature" in e for e in notifier_batch["payload"])
    # the whole notification is not an event of its own: it would be ignored
    # as "event: not an inventory event" if nothing split it
    assert describe(notifier_batch).key == notifier_batch["message_id"]


@pytest.mark.parametrize(
    "shape", [as_listener, as_wire, lambda n: n], ids=["listener", "wire", "bare"]
)
def test_notifier_batch_splits_into_its_events(notifier_batch: dict[str, Any], shape: Any) -> None:
    parts = list(split(shape(notifier_batch)))
    inner = notifier_batch["payload"]
    assert len(parts) == len(inner)
    # each event keyed by its own message_id (the notification's, as if posted alone)
    assert [describe(p).key for p in parts] == [e["message_id"] for e in inner]
    direct = [listener_shape(m) for m in load_notigen(SEQUENCE)]
    for part, message in zip(parts, direct, strict=False):
        assert translate(part).changes == translate(message).changes
    image = translate(parts[-1])
    assert [(c.kind, c.op) for c in image.changes] == [(Kind.IMAGE, Op.UPSERT)]


@pytest.mark.parametrize("junk", [{"garbage": True}, "junk", 42, None], ids=repr)
def test_an_item_that_is_not_an_event_fails_alone(notifier_batch: dict[str, Any], junk: Any) -> None:
    body = copy.deepcopy(notifier_batch)
    body["payload"].insert(1, junk)
    parts = list(split(body))
    assert len(parts) == len(notifier_batch["payload"]) + 1
    with pytest.raises(BadPayload):
        translate(parts[1])
    # the neighbours are exactly the events of the batch without the junk
    neighbours = [part for i, part in enumerate(parts) if i != 1]
    assert neighbours == list(split(notifier_batch))
    assert [translate(p) for p in neighbours] == [translate(p) for p in split(notifier_batch)]


def test_metering_notifications_stay_ignored() -> None:
    samples = {"event_type": "metering", "payload": [{"counter_name": "cpu"}], "priority": "SAMPLE"}
    [result] = run(samples)
    assert "not an inventory event" in result.ignored


# -- events without raw: images --------------------------------------------------------
@pytest.mark.parametrize("event_type", ["image.create", "image.update"])
def test_image_traits_update_name_and_status(event_type: str) -> None:
    message = glance(event_type)
    [direct] = run(message)
    [traits] = run(without_raw(message))
    (want,) = direct.changes
    (got,) = traits.changes
    assert (got.kind, got.op, got.external_id) == (Kind.IMAGE, Op.UPSERT, want.external_id)
    assert got.fields == {k: want.fields[k] for k in ("name", "status")}
    assert "visibility" in traits.note and "store_raw" in traits.note
    assert direct.note is None


def test_image_delete_from_traits_is_the_notifications_delete() -> None:
    message = glance("image.delete")
    [direct] = run(message)
    [traits] = run(without_raw(message))
    assert traits.changes == direct.changes and traits.note is None


def test_image_events_the_definitions_do_not_name_are_ignored_with_the_reason() -> None:
    message = glance("image.update")
    message["event_type"] = "image.activate"  # no trait definition: no resource_id
    [result] = run(without_raw(message))
    assert "no resource_id trait" in result.ignored


# -- events without raw: ports and floating IPs -------------------------------------------
def test_port_delete_from_traits_deletes_the_port() -> None:
    delete = modern_delete(load_json(PORT_CREATE), "port")
    [direct] = run(delete)
    [traits] = run(without_raw(delete))
    assert [(c.kind, c.op, c.external_id) for c in traits.changes] == [
        (Kind.HOST_IP, Op.DELETE, delete["payload"]["port_id"])
    ]
    assert traits.changes == direct.changes


def test_port_delete_with_only_the_id_is_ignored_with_the_reason() -> None:
    [result] = run(without_raw(load_json(PORT_DELETE)))  # {"port_id": ...} only
    assert "no resource_id trait" in result.ignored and "port_id" in result.ignored


def test_port_and_floating_ip_creations_cannot_be_applied_from_traits() -> None:
    [port] = run(without_raw(load_json(PORT_CREATE)))
    assert "nothing to update" in port.ignored and "addresses" in port.ignored
    [fip] = run(without_raw(load_json(FLOATINGIPS)["floatingip.create.end"]))
    assert "nothing to update" in fip.ignored


def test_floating_ip_delete_from_traits() -> None:
    fips = load_json(FLOATINGIPS)
    [old] = run(without_raw(fips["floatingip.delete.end"]))  # floatingip_id only
    assert "no resource_id trait" in old.ignored
    delete = modern_delete(fips["floatingip.create.end"], "floatingip")
    [traits] = run(without_raw(delete))
    assert traits.changes == run(delete)[0].changes
    assert traits.changes[0].external_id == "fip:" + delete["payload"]["floatingip_id"]


# -- events without raw: projects ---------------------------------------------------------
def test_project_traits_are_the_notification() -> None:
    message = project_created()
    [direct] = run(message)
    [traits] = run(without_raw(message))
    assert traits.changes == direct.changes
    assert [(c.kind, c.op, c.external_id) for c in traits.changes] == [
        (Kind.PROJECT, Op.UPSERT, "671da331c47d4e29bb6ea1d270154ec3")
    ]
    deleted = copy.deepcopy(message)
    deleted["event_type"] = "identity.project.deleted"
    assert run(without_raw(deleted))[0].changes[0].op == Op.DELETE


def test_instance_traits_say_what_they_cannot_carry() -> None:
    [result] = run(without_raw(load_json("nova-legacy/designate/compute.instance.create.end.json")))
    assert result.changes and "IP addresses" in result.note
