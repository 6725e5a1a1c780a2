"""Glance image and Neutron port / floating IP notifications -> Changes."""

from __future__ import annotations

import pytest

from sync.changes import Kind, Op
from sync.drivers.base import BadPayload
from sync.drivers.openstack.notifications import translate
from tests.drivers import Fold, changes, one, run
from tests.fixtures import load_json

IMAGE = "7ba7087c-b81e-4807-b0e3-dd851f334add"


def images() -> dict:
    return load_json("glance/searchlight/images.json")


def ports() -> dict:
    return load_json("neutron/searchlight/ports.json")


def fips() -> dict:
    return load_json("neutron/searchlight/floatingips.json")


# -- Glance -----------------------------------------------------------------------


def test_image_create():
    change = one(changes(images()["image.create"]), Kind.IMAGE)
    assert change.external_id == IMAGE
    assert change.source_ref == "41b88064-ee84-4163-8e7e-d695655ac65f"
    assert change.fields == {
        "name": "cirros-0.3.4-x86_64-uec-kernel",
        "status": "queued",
        "min_disk": 0,
        "min_ram": 0,
        "visibility": "public",  # from is_public (v1 payload)
    }


def test_image_update_is_newer_than_create():
    create = one(changes(images()["image.create"]), Kind.IMAGE)
    update = one(changes(images()["image.update"]), Kind.IMAGE)
    assert update.fields["name"] == "cirros-0.3.4-x86_64-uec-kernel-UPDATED"
    assert update.fields["status"] == "active"
    assert update.fields["visibility"] == "private"
    # same updated_at in both samples: the message time breaks the tie
    assert update.version > create.version


def test_image_properties_and_v2_visibility():
    message = images()["image.update"]
    message["event_type"] = "image.activate"
    message["payload"]["properties"] = {
        "os_distro": "ubuntu",
        "os_version": "22.04",
        "architecture": "x86_64",
    }
    message["payload"]["visibility"] = "community"
    message["payload"]["min_disk"] = "20"  # some emitters send strings
    fields = one(changes(message), Kind.IMAGE).fields
    assert fields["os_distro"] == "ubuntu"
    assert fields["os_version"] == "22.04"
    assert fields["architecture"] == "x86_64"
    assert fields["visibility"] == "community"
    assert fields["min_disk"] == 20


def test_image_delete():
    update = one(changes(images()["image.update"]), Kind.IMAGE)
    delete = one(changes(images()["image.delete"]), Kind.IMAGE, Op.DELETE)
    assert delete.external_id == IMAGE and not delete.fields
    assert delete.version >= update.version
    assert delete.version.startswith("2015-09-01T10:02:43")  # deleted_at, after the message time


def test_image_delete_with_an_id_payload():
    # notifications.rst: "image.delete ... For INFO events, it is the image id."
    message = {"event_type": "image.delete", "priority": "INFO", "payload": IMAGE}
    assert one(changes(message), Kind.IMAGE, Op.DELETE).external_id == IMAGE


@pytest.mark.parametrize(
    "event", ["image.member.create", "image.member.update", "image.member.delete"]
)
def test_image_member_events_are_ignored(event):
    [result] = run(images()[event])
    assert result.ignored and "members" in result.ignored


def test_image_without_id_is_bad():
    message = images()["image.create"]
    del message["payload"]["id"]
    with pytest.raises(BadPayload, match=r"image\.create: payload\.id is missing"):
        translate(message)


# -- Neutron ports ------------------------------------------------------------------


def test_port_create_for_a_server():
    change = one(changes(load_json("neutron/designate/port.create.end.json")), Kind.HOST_IP)
    assert change.external_id == "289ed46b-274c-444d-9fd4-bddf8acc7d7c"
    assert change.fields == {
        "host": "f2171ae4-c74f-44ef-8cde-908644c279f1",  # device_owner compute:nova
        "port_id": "289ed46b-274c-444d-9fd4-bddf8acc7d7c",
        "addresses": [
            {"address": "172.16.59.10", "kind": "fixed", "mac": "fa:16:3e:09:ef:f2", "version": 4}
        ],
    }


def test_port_lifecycle_attach_rename_detach_delete():
    port_id = "f7c93feb-b837-4bb1-b0bc-7ad2a53d85cb"
    server = "939d5843-5ca0-4e63-86f2-7a945724618c"
    steps = ["port.create.end", "port_attach", "port_rename", "port_detach", "port.delete.end"]
    found = [
        one(changes(ports()[step]), Kind.HOST_IP, op)
        for step, op in zip(steps, [Op.UPSERT] * 4 + [Op.DELETE], strict=True)
    ]
    assert {c.external_id for c in found} == {port_id}
    assert [c.fields.get("host") for c in found[:4]] == [None, server, server, None]
    assert found[0].fields["addresses"] == [
        {"address": "192.168.50.3", "kind": "fixed", "mac": "fa:16:3e:bf:7f:89", "version": 4}
    ]
    versions = [c.version for c in found]
    assert versions == sorted(versions)


def test_port_not_owned_by_compute_has_no_host():
    change = one(changes(load_json("neutron/sentry/neutron.17.js")), Kind.HOST_IP)
    assert change.fields["host"] is None  # device_owner ""


def test_bulk_port_create():
    found = changes(load_json("neutron/sentry/neutron.18.js"))
    assert [c.external_id for c in found] == [
        "b058a214-2289-4a53-821d-a960e2c184ce",
        "620944c6-fab2-4ffa-8ffc-77a0efb34a28",
    ]
    assert all(c.fields["addresses"] == [] for c in found)


def test_port_delete():
    change = one(
        changes(load_json("neutron/designate/port.delete.end.json")), Kind.HOST_IP, Op.DELETE
    )
    assert change.external_id == "bfdcb007-f68d-46bd-8150-abcae9fb3af6"


def test_port_delete_with_the_resource_instead_of_the_id():
    message = {"event_type": "port.delete.end", "payload": {"port": {"id": "p-1"}}}
    assert one(changes(message), Kind.HOST_IP, Op.DELETE).external_id == "p-1"


def test_port_without_id_is_bad():
    message = load_json("neutron/designate/port.create.end.json")
    del message["payload"]["port"]["id"]
    with pytest.raises(BadPayload, match=r"port\.create\.end: payload\.port\.id is missing"):
        translate(message)


def test_port_payload_not_wrapped_is_bad():
    message = load_json("neutron/designate/port.create.end.json")
    message["payload"] = message["payload"]["port"]["fixed_ips"]
    with pytest.raises(BadPayload, match="payload is not a JSON object"):
        translate(message)


# -- Neutron floating IPs -------------------------------------------------------------


def test_floatingip_create_associate_disassociate_delete():
    fip = "fip:1a124625-4c71-4d20-a65b-3cf34465dab2"
    create = one(changes(fips()["floatingip.create.end"]), Kind.HOST_IP)
    assert (create.external_id, dict(create.fields)) == (
        fip,
        {"host": None, "port_id": None, "addresses": []},
    )
    associate = one(changes(fips()["floatingip.associate.end"]), Kind.HOST_IP)
    assert associate.fields == {
        "host": None,
        "port_id": "163da95e-740d-4fe0-a8ee-91b77bb5ae33",
        "addresses": [{"address": "172.25.0.20", "kind": "floating", "version": 4}],
    }
    disassociate = one(changes(fips()["floatingip.disassociate.end"]), Kind.HOST_IP)
    assert disassociate.fields == {"host": None, "port_id": None, "addresses": []}
    delete = one(changes(fips()["floatingip.delete.end"]), Kind.HOST_IP, Op.DELETE)
    assert delete.external_id == fip
    sequence = [create, associate, disassociate, delete]
    assert [c.version for c in sequence] == sorted(c.version for c in sequence)
    fold = Fold()
    for change in reversed(sequence):
        fold.apply(change)
    assert fold.get(Kind.HOST_IP, fip)["_deleted"] is True
    assert fold.get(Kind.HOST_IP, fip)["addresses"] == []


def test_designate_floatingip_associate_and_disassociate():
    fip = "fip:f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e"
    on = one(
        changes(load_json("neutron/designate/floatingip.update.end_associate.json")), Kind.HOST_IP
    )
    assert (on.external_id, on.fields["port_id"]) == (fip, "289ed46b-274c-444d-9fd4-bddf8acc7d7c")
    assert on.fields["addresses"] == [{"address": "192.0.2.201", "kind": "floating", "version": 4}]
    off = one(
        changes(load_json("neutron/designate/floatingip.update.end_disassociate.json")),
        Kind.HOST_IP,
    )
    assert (off.external_id, off.fields["port_id"], off.fields["addresses"]) == (fip, None, [])
    assert off.version > on.version


@pytest.mark.parametrize(
    "path",
    [
        "neutron/designate/port.create.start.json",
        "neutron/designate/port.delete.start.json",
        "neutron/designate/floatingip.delete.start.json",
    ],
)
def test_neutron_start_events_are_ignored(path):
    [result] = run(load_json(path))
    assert ".start" in result.ignored
