"""Transport handling (envelopes, listener shape, batches), describe(),
malformed input and the version rules of the OpenStack notification driver."""

from __future__ import annotations

import copy
import json

import pytest

from sync.changes import Kind, Op, make_version, parse_timestamp
from sync.drivers.base import BadPayload, body_hash
from sync.drivers.openstack import OpenStackDriver
from sync.drivers.openstack.notifications import describe, split, translate
from tests.drivers import changes, envelope, listener_shape, one, run
from tests.fixtures import load_json, load_notigen, load_nova_versioned, with_wire_fields

LEGACY_CREATE = "nova-legacy/designate/compute.instance.create.end.json"


def run_changes(message: dict) -> list:
    return [c for r in run(message) for c in r.changes]


@pytest.fixture
def legacy_create() -> dict:
    return load_json(LEGACY_CREATE)


@pytest.fixture
def versioned_create() -> dict:
    return with_wire_fields(
        load_nova_versioned("instance-create-end.json"),
        message_id="11111111-2222-3333-4444-555555555555",
        timestamp="2012-10-29 13:42:12.000001",
    )


# -- split ------------------------------------------------------------------


def without_tokens(message: dict) -> dict:
    """What split() yields: the message minus Keystone tokens in its context."""
    out = {k: v for k, v in message.items() if k != "_context_auth_token"}
    if isinstance(out.get("ctxt"), dict):
        out["ctxt"] = {k: v for k, v in out["ctxt"].items() if k != "auth_token"}
    return out


def test_bare_v1_message_passes_through(legacy_create):
    assert list(split(legacy_create)) == [without_tokens(legacy_create)]


def test_oslo_v2_envelope_gives_the_same_changes(versioned_create, legacy_create):
    for message in (versioned_create, legacy_create):
        wrapped = envelope(message)
        assert list(split(wrapped)) == [without_tokens(message)]
        assert changes(wrapped) == changes(message)
        assert describe(wrapped) == describe(message)


def test_envelope_nested_under_request_like_sg_core():
    """The real sg-core capture: envelope under "request", a Ceilometer sample inside."""
    body = load_json("oslo/sg-core/metric-tests.json")["CeilometerMetrics"]["testInput"]
    [message] = list(split(body))
    assert message["event_type"] == "metering"
    info = describe(message)
    assert info.key == "37f64423-db31-4cfb-8c9d-06f9c0fad04a"
    assert info.event_type == "metering"
    [result] = run(body)
    assert result.ignored and "metering" in result.ignored


def test_listener_shape_gives_the_same_changes(legacy_create):
    listener = listener_shape(legacy_create)
    assert changes(listener) == changes(legacy_create)
    assert describe(listener) == describe(legacy_create)


def test_batch_of_mixed_shapes_gives_the_same_changes(versioned_create, legacy_create):
    batch = [envelope(versioned_create), listener_shape(legacy_create)]
    assert list(split(batch)) == [
        without_tokens(versioned_create),
        without_tokens(listener_shape(legacy_create)),
    ]
    assert changes(batch) == changes(versioned_create) + changes(legacy_create)


def test_envelope_holding_a_batch_is_split():
    messages = [
        load_json("neutron/designate/port.create.end.json"),
        load_json("neutron/designate/port.delete.end.json"),
    ]
    assert list(split({"oslo.version": "2.0", "oslo.message": json.dumps(messages)})) == messages


def test_raw_json_text_is_parsed(legacy_create):
    assert list(split(json.dumps(legacy_create))) == [without_tokens(legacy_create)]


def test_truncated_envelope_is_a_bad_payload(versioned_create):
    wrapped = envelope(versioned_create)
    wrapped["oslo.message"] = wrapped["oslo.message"][:300]
    with pytest.raises(BadPayload, match=r"oslo\.message is not valid JSON \(truncated\?\)"):
        list(split(wrapped))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"oslo.version": "2.0", "oslo.message": {"event_type": "x"}}, "must be a JSON string"),
        ({"oslo.version": "2.0", "oslo.message": "42"}, "holds a JSON int"),
        ({"oslo.version": "1.0", "oslo.message": "{}"}, "unsupported oslo.version"),
        ({"oslo.version": "2.0", "oslo.message": "{'a': 1}"}, "not valid JSON: Expecting"),
    ],
)
def test_broken_envelopes_name_the_problem(body, reason):
    with pytest.raises(BadPayload, match=reason):
        list(split(body))


def test_driver_class_delegates_to_the_module(legacy_create):
    driver = OpenStackDriver()
    [message] = list(driver.split(envelope(legacy_create)))
    assert driver.describe(message).key == legacy_create["message_id"]
    assert driver.translate(message, {}).changes == translate(message).changes


# -- describe -----------------------------------------------------------------


def test_describe_v1(legacy_create):
    info = describe(legacy_create)
    assert info.key == "af100d58-7a9c-41a1-9311-8c52b44ca294"
    assert info.event_type == "compute.instance.create.end"
    assert info.occurred_at == parse_timestamp("2012-11-03T17:54:48.797009+00:00")


def test_describe_listener_shape_uses_metadata():
    message = load_json("glance/searchlight/images.json")["image.update"]
    info = describe(message)
    assert info.key == "a1939af5-34af-403b-a115-109eadcee840"
    assert info.occurred_at == parse_timestamp("2015-09-01 09:56:18.872189")


def test_describe_without_id_falls_back_to_body_hash():
    sample = load_nova_versioned("instance-power_off-end.json")  # as emitted: no id/time
    info = describe(sample)
    assert info.key == body_hash(sample)
    assert info.event_type == "instance.power_off.end"
    assert info.occurred_at is None
    assert all(c.source_ref == info.key for c in translate(sample).changes)


def test_describe_never_raises_on_garbage():
    assert describe([1, 2]).key == body_hash([1, 2])
    broken = {"oslo.version": "2.0", "oslo.message": "{"}
    assert describe(broken).key == body_hash(broken)


# -- malformed messages ---------------------------------------------------------


def test_missing_versioned_uuid_names_the_field(versioned_create):
    del versioned_create["payload"]["nova_object.data"]["uuid"]
    with pytest.raises(BadPayload, match=r"payload\.nova_object\.data\.uuid is missing"):
        translate(versioned_create)


def test_missing_legacy_instance_id_names_the_field(legacy_create):
    del legacy_create["payload"]["instance_id"]
    with pytest.raises(BadPayload, match=r"compute\.instance\.create\.end: payload\.instance_id"):
        translate(legacy_create)


@pytest.mark.parametrize("payload", [None, "a string", [1, 2], 42])
def test_payload_not_an_object(legacy_create, payload):
    legacy_create["payload"] = payload
    with pytest.raises(BadPayload, match="payload is not a JSON object"):
        translate(legacy_create)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("display_name", {"a": 1}, r"payload\.display_name must be a string"),
        ("fixed_ips", "10.0.0.1", r"payload\.fixed_ips must be a JSON array"),
        ("metadata", "x=y", r"payload\.metadata must be a JSON object"),
        ("memory_mb", "lots", None),  # only read with a flavor id (absent here)
        ("instance_id", 12.5, r"payload\.instance_id is not a string"),
    ],
)
def test_wrong_types_name_the_field(legacy_create, field, value, reason):
    legacy_create["payload"][field] = value
    if reason is None:
        assert translate(legacy_create).changes
        return
    with pytest.raises(BadPayload, match=reason):
        translate(legacy_create)


def test_bad_ip_address_names_the_entry(legacy_create):
    legacy_create["payload"]["fixed_ips"][0]["address"] = "not-an-ip"
    with pytest.raises(BadPayload, match=r"payload\.fixed_ips\[0\]\.address is not an IP"):
        translate(legacy_create)


def test_message_without_event_type_is_bad():
    payload_only = load_json(
        "nova-legacy/stacktach-notification-schemas-samples/compute-instance-create-end_1.json"
    )
    with pytest.raises(BadPayload, match="no event_type"):
        translate(payload_only)


def test_translate_rejects_non_objects():
    with pytest.raises(BadPayload, match="must be a JSON object, not list"):
        translate([1, 2])


def test_unknown_event_types_are_ignored_even_with_odd_payloads():
    result = translate({"event_type": "keypair.create.end", "payload": "whatever"})
    assert result.ignored and not result.changes


def test_error_notification_with_text_payload_is_ignored():
    # Glance's doc: "WARN and ERROR events contain a text message in the payload".
    message = {"event_type": "image.upload", "priority": "ERROR", "payload": "Error Message"}
    assert "text payload" in translate(message).ignored


# -- Keystone projects ------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "op"),
    [("identity.project.created", Op.UPSERT), ("identity.project.deleted", Op.DELETE)],
)
def test_identity_project_basic_format(event, op):
    message = {
        "event_type": event,
        "message_id": "m-1",
        "timestamp": "2020-01-01 00:00:00.000000",
        "payload": {"resource_info": "proj-1"},
    }
    change = one(changes(message), Kind.PROJECT, op)
    assert change.external_id == "proj-1"
    assert change.version == make_version(
        parse_timestamp("2020-01-01T00:00:00Z"), parse_timestamp("2020-01-01T00:00:00Z")
    )


def test_identity_project_cadf_format():
    message = {
        "event_type": "identity.project.updated",
        "payload": {
            "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
            "target": {"id": "proj-2", "typeURI": "data/security/project"},
        },
    }
    assert one(changes(message), Kind.PROJECT).external_id == "proj-2"


def test_identity_project_without_id_is_bad():
    with pytest.raises(BadPayload, match=r"payload\.resource_info is missing"):
        translate({"event_type": "identity.project.deleted", "payload": {}})


# -- versions ---------------------------------------------------------------------


def _host_version(message: dict) -> str:
    return next(c.version for c in changes(message) if c.kind == Kind.HOST)


def test_later_updated_at_gives_a_greater_version(versioned_create):
    update = with_wire_fields(
        load_nova_versioned("instance-update.json"), timestamp="2012-10-29 13:42:12.000001"
    )
    update["payload"]["nova_object.data"]["updated_at"] = "2012-10-29T13:50:00Z"
    assert _host_version(update) > _host_version(versioned_create)


def test_later_message_breaks_updated_at_ties(versioned_create):
    later = copy.deepcopy(versioned_create)
    later["timestamp"] = "2012-10-29 13:42:13.000000"
    assert _host_version(later) > _host_version(versioned_create)


def test_delete_version_is_not_older_than_the_preceding_update():
    update = with_wire_fields(
        load_nova_versioned("instance-update.json"), timestamp="2012-10-29 13:42:11.5"
    )
    update["payload"]["nova_object.data"]["updated_at"] = "2012-10-29T13:42:11Z"
    delete = with_wire_fields(
        load_nova_versioned("instance-delete-end.json"), timestamp="2012-10-29 13:42:12"
    )
    [deletion] = changes(delete)
    assert deletion.op == Op.DELETE
    assert deletion.version >= _host_version(update)
    # the latest of deleted_at/terminated_at (13:42:11) and the message time
    assert deletion.version.startswith("2012-10-29T13:42:12.000000|")
    # without a message time (the sample as emitted) deleted_at decides
    [bare] = changes(load_nova_versioned("instance-delete-end.json"))
    assert bare.version.startswith("2012-10-29T13:42:11.000000|")


def test_legacy_payloads_without_updated_at_order_by_message_time():
    """A real legacy sequence (notigen delete: updates, shutdown, delete.end)
    for one instance: versions follow the message order."""
    sequence = load_notigen("compute.instance.delete.start_8.json")
    versions = [c.version for m in sequence for c in run_changes(m) if c.kind == Kind.HOST]
    assert len(versions) == 6
    assert versions == sorted(versions)
    assert versions[0].split("|")[0] == versions[0].split("|")[1]  # message time twice


def test_embedded_copies_sort_before_the_objects_own_events(versioned_create):
    flavor_update = with_wire_fields(
        load_nova_versioned("flavor-update.json"), timestamp="2012-10-29 13:00:00"
    )
    embedded = one(changes(versioned_create), Kind.FLAVOR)
    own = one(changes(flavor_update), Kind.FLAVOR)
    assert embedded.external_id == own.external_id
    # The instance event is later, but its flavor is a copy: it must not win.
    assert embedded.version < own.version
    assert one(changes(versioned_create), Kind.PROJECT).version < _host_version(versioned_create)


def test_split_drops_keystone_tokens_before_they_reach_the_inbox():
    from tests.fixtures import load_json

    message = load_json("nova-legacy/designate/compute.instance.create.end.json")
    assert message.get("_context_auth_token")
    (stored,) = list(split(message))
    assert "_context_auth_token" not in stored
    assert "auth_token" not in json.dumps(stored)
    assert translate(stored).changes == translate(message).changes
    listener = {"ctxt": {"auth_token": "gAAAA-secret", "project_id": "p"}, "event_type": "x",
                "payload": {}, "metadata": {"message_id": "m"}}
    (stored,) = list(split(listener))
    assert stored["ctxt"] == {"project_id": "p"}
