"""Ceilometer HTTP-publisher bodies through the OpenStack driver.

The events are built by Ceilometer's own converter (``ceilometer.event.
converter`` with its default ``event_definitions.yaml``) from the unedited
legacy Nova fixtures, so the traits are exactly what a real Ceilometer 27
would publish. Ceilometer is a test dependency (requirements-dev.txt).
Only ``ceilometer.event`` and ``ceilometer.publisher.http`` are imported:
``ceilometer.opts`` would import oslo.privsep and with it eventlet.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from sync.changes import Kind, Op
from sync.drivers.base import BadPayload, body_hash
from sync.drivers.openstack.ceilometer import RAW_ONLY, wrap_raw_only
from sync.drivers.openstack.notifications import describe, split, translate
from tests.drivers import Fold, changes, listener_shape, run
from tests.fixtures import load_json, load_notigen

pytest.importorskip("ceilometer.event.converter")

LEGACY_CREATE = "nova-legacy/designate/compute.instance.create.end.json"
SENTRY_DELETE = "nova-legacy/sentry/compute.instance.delete.end.json"
WATCHER = "nova-legacy/watcher"


# -- building real Ceilometer events ----------------------------------------------


def ceilometer_conf(store_raw: bool) -> Any:
    """A ConfigOpts with just the options the converter and HttpPublisher
    read, at Ceilometer's defaults (no config files are parsed)."""
    from ceilometer.event import converter
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf.register_opts(converter.OPTS, group="event")
    # ceilometer.opts defines it (default 64); importing that module pulls in eventlet
    conf.register_opts([cfg.IntOpt("max_parallel_requests", default=64, min=1)])
    conf([], project="ceilometer", default_config_files=[], default_config_dirs=[])
    if store_raw:
        conf.set_override("store_raw", ["info"], group="event")
    return conf


@cache
def _converter(store_raw: bool) -> Any:
    from ceilometer.event import converter
    from stevedore import extension

    plugins = extension.ExtensionManager(namespace="ceilometer.event.trait_plugin")
    return converter.setup_events(ceilometer_conf(store_raw), plugins)


def to_listener(message: dict[str, Any]) -> dict[str, Any]:
    """What oslo.messaging hands Ceilometer's EventEndpoint: the listener
    shape (wire-v1 fixtures are converted, listener ones kept)."""
    if "metadata" in message and "payload" in message:
        return copy.deepcopy(message)
    return listener_shape(message)


def ceilometer_event(message: dict[str, Any], *, store_raw: bool) -> Any:
    """A ``ceilometer.event.models.Event`` as the notification agent builds it."""
    event = _converter(store_raw).to_event("info", to_listener(message))
    assert event is not None
    return event


def published(message: dict[str, Any], *, store_raw: bool) -> dict[str, Any]:
    """One event as HttpPublisher serializes it (``Event.serialize`` + json)."""
    return json.loads(json.dumps(ceilometer_event(message, store_raw=store_raw).serialize()))


def raw_only(message: dict[str, Any]) -> dict[str, Any]:
    """What HttpPublisher posts per event with ``raw_only=True``."""
    event = ceilometer_event(message, store_raw=True)
    return json.loads(json.dumps(event.as_dict()["raw"]["payload"]))


def host_of(found: list) -> dict[str, Any]:
    [host] = [c for c in found if c.kind == Kind.HOST]
    return {"op": host.op, "id": host.external_id, "version": host.version, **host.fields}


def watcher(name: str) -> dict[str, Any]:
    return load_json(f"{WATCHER}/scenario3_legacy_{name}.json")


# -- with raw (store_raw = info) ---------------------------------------------------


@pytest.mark.parametrize("path", [LEGACY_CREATE, SENTRY_DELETE])
def test_event_with_raw_is_the_notification_itself(path):
    message = load_json(path)
    event = published(message, store_raw=True)
    [inner] = list(split(event))
    expected = to_listener(message)
    expected["ctxt"] = {k: v for k, v in expected["ctxt"].items() if k != "auth_token"}
    assert inner == expected  # Keystone tokens are never stored
    assert describe(inner) == describe(message)
    assert changes(event) == changes(message)


def test_batch_of_events_with_raw_splits_into_notifications():
    messages = [load_json(LEGACY_CREATE), load_json(SENTRY_DELETE)]
    batch = [published(m, store_raw=True) for m in messages]
    assert [describe(m).key for m in split(batch)] == [describe(m).key for m in messages]
    assert changes(batch) == changes(messages[0]) + changes(messages[1])


def test_translate_of_a_stored_event_with_raw_uses_the_raw():
    """A replay of a body recorded before split learnt about raw gives the same."""
    message = load_json(LEGACY_CREATE)
    event = published(message, store_raw=True)
    assert translate(event).changes == translate(message).changes
    assert describe(event).key == describe(message).key


# -- without raw: traits -----------------------------------------------------------


def test_traits_only_event_is_keyed_and_timed_like_the_notification():
    message = load_json(LEGACY_CREATE)
    event = published(message, store_raw=False)
    assert event["raw"] == {}
    assert list(split(event)) == [event]
    info, direct = describe(event), describe(message)
    assert (info.key, info.event_type, info.occurred_at) == (
        direct.key,
        direct.event_type,
        direct.occurred_at,
    )


def test_traits_give_the_same_host_flavor_and_project_as_the_notification():
    """watcher create.end carries instance_flavor_id, so the flavor is known."""
    message = watcher("instance-create-end")
    via_traits = changes(published(message, store_raw=False))
    direct = changes(message)
    got, want = host_of(via_traits), host_of(direct)
    # what the default traits do not carry: IPs, image, tags, metadata
    for absent in ("addresses", "image", "tags", "metadata"):
        want.pop(absent, None)
    assert got == want
    assert want["hypervisor"] == "Node_0" and want["flavor"] == "1"
    flavor = [c for c in via_traits if c.kind == Kind.FLAVOR]
    assert flavor == [c for c in direct if c.kind == Kind.FLAVOR]
    project = [c for c in via_traits if c.kind == Kind.PROJECT]
    assert [(c.external_id, c.op) for c in project] == [
        (c.external_id, c.op) for c in direct if c.kind == Kind.PROJECT
    ]


def test_traits_without_instance_flavor_id_set_no_flavor():
    """designate's create.end has only instance_type_id (a database key): no
    flavor, exactly like the direct translation."""
    message = load_json(LEGACY_CREATE)
    got = host_of(changes(published(message, store_raw=False)))
    assert "flavor" not in got
    assert got["hostname"] == "TestInstance" and got["status"] == "active"
    assert got["hypervisor"] == "stack01"
    assert got["launched_at"] == host_of(changes(message))["launched_at"]


def test_traits_delete_has_the_notifications_delete_version():
    message = load_json(SENTRY_DELETE)
    [got] = changes(published(message, store_raw=False))
    [want] = changes(message)
    assert (got.kind, got.op, got.external_id, got.version) == (
        want.kind,
        want.op,
        want.external_id,
        want.version,
    )
    assert got.op == Op.DELETE


def test_hypervisor_is_not_taken_from_an_update_sent_by_the_api():
    """sentry's compute.instance.update comes from ``api.ubuntu.12``: the
    ``host`` trait is the API host, not the hypervisor."""
    message = load_json("nova-legacy/sentry/compute.instance.update.json")
    got = host_of(changes(published(message, store_raw=False)))
    assert "hypervisor" not in got
    assert host_of(changes(message))["hypervisor"] == "ubuntu"


def test_hypervisor_from_the_destination_of_a_live_migration():
    message = watcher("livemigration-post-dest-end")
    got = host_of(changes(published(message, store_raw=False)))
    assert got["hypervisor"] == "Node_1" == host_of(changes(message))["hypervisor"]


def test_resize_confirm_from_the_source_host_sets_no_hypervisor():
    message = watcher("instance-resize-confirm-end")
    message = {**message, "metadata": {"message_id": "rc-1", "timestamp": "2016-08-19 10:30:00"}}
    event = published(message, store_raw=False)
    got = host_of(changes(event))
    assert "hypervisor" not in got and got["flavor"] == "5a0665e0-d2ec-4e4b-85f9-cc0ce4ab052b"


def test_notigen_sequences_converge_like_the_notifications():
    """Whole legacy sequences (create, power off, resize, delete) folded in
    arrival order: the traits path ends where the direct path ends."""
    for name in (
        "compute.instance.create.start_23.json",
        "compute.instance.power_off.start_4.json",
        "compute.instance.resize.prep.start_24.json",
        "compute.instance.delete.start_8.json",
    ):
        seq = [
            {**m, "publisher_id": f"compute.{m['payload'].get('host')}"} for m in load_notigen(name)
        ]
        direct, traits = Fold(), Fold()
        for m in seq:
            for r in run(m):
                for c in r.changes:
                    direct.apply(c)
            for r in run(published(m, store_raw=False)):
                for c in r.changes:
                    traits.apply(c)
        uuid = seq[-1]["payload"]["instance_id"]
        keys = ("hostname", "status", "flavor", "project", "_deleted")
        want, got = direct.get(Kind.HOST, uuid), traits.get(Kind.HOST, uuid)
        assert {k: got.get(k) for k in keys} == {k: want.get(k) for k in keys}, name
        # The hypervisor comes only from actions the hosting compute emits
        # (create, rebuild, migrations...), never from compute.instance.update.
        assert got.get("hypervisor") in (None, want["hypervisor"]), name
        if name.startswith("compute.instance.create"):
            assert got["hypervisor"] == "host-value"


def test_non_instance_events_without_raw_are_ignored():
    message = load_json("neutron/designate/port.create.end.json")
    [result] = run(published(message, store_raw=False))
    assert result.ignored and "store_raw" in result.ignored
    [result] = run(published(message, store_raw=True))  # with raw: a real port change
    assert result.ignored is None and result.changes


def test_start_events_without_raw_are_ignored():
    message = load_json("nova-legacy/designate/compute.instance.create.start.json")
    [result] = run(published(message, store_raw=False))
    assert result.ignored and ".start" in result.ignored


# -- raw_only ----------------------------------------------------------------------


def test_raw_only_payload_is_a_timestamped_snapshot():
    payload = raw_only(load_json(LEGACY_CREATE))
    [wrapped] = list(split(payload))
    assert wrapped[RAW_ONLY] == payload and wrapped["received_at"]
    info = describe(wrapped)
    assert info.key == body_hash(wrapped) and info.event_type == "ceilometer.raw_only"
    assert info.occurred_at is not None
    host = host_of(changes(wrapped))
    assert host["op"] == Op.UPSERT and host["status"] == "active"
    assert host["hostname"] == "TestInstance" and host["hypervisor"] == "stack01"
    assert host["addresses"] == host_of(changes(load_json(LEGACY_CREATE)))["addresses"]


def test_raw_only_snapshots_order_by_receipt_and_are_not_deduplicated():
    from datetime import UTC, datetime, timedelta

    start = datetime(2024, 1, 1, tzinfo=UTC)
    seq = load_notigen("compute.instance.power_off.start_4.json")
    active, stopped = seq[0]["payload"], seq[-1]["payload"]
    bodies = [
        wrap_raw_only(p, start + timedelta(seconds=i))
        for i, p in enumerate([active, stopped, active])
    ]
    assert len({describe(b).key for b in bodies}) == 3
    fold = Fold()
    for body in reversed(bodies):  # arrival order does not matter: versions do
        for c in changes(body):
            fold.apply(c)
    assert fold.get(Kind.HOST, active["instance_id"])["status"] == "active"


def test_raw_only_deleted_state_deletes_the_host():
    payload = raw_only(load_json(SENTRY_DELETE))
    [change] = changes(payload)
    assert (change.kind, change.op) == (Kind.HOST, Op.DELETE)


def test_raw_only_versioned_payload():
    from tests.fixtures import load_nova_versioned

    payload = load_nova_versioned("instance-power_off-end.json")["payload"]
    host = host_of(changes(payload))
    assert host["status"] == "stopped"


def test_raw_only_is_only_for_instance_payloads():
    """A bare payload that is not an instance (scheduler request, image)
    keeps failing as before: no event type to tell what it is."""
    scheduler = load_json(
        "nova-legacy/stacktach-notification-schemas-samples/scheduler-run_instance_1.json"
    )
    image = load_json("glance/searchlight/images.json")
    image_payload = next(iter(image.values()))["payload"]
    for payload in (scheduler, image_payload):
        [message] = list(split(payload))
        assert message == payload
        with pytest.raises(BadPayload, match="no event_type"):
            translate(message)


def test_a_bare_payload_given_to_translate_directly_is_still_bad():
    """Only split (in the worker, at receipt) may call a payload a snapshot:
    it is what stamps the receipt time."""
    payload = raw_only(load_json(LEGACY_CREATE))
    with pytest.raises(BadPayload, match="no event_type"):
        translate(payload)


# -- nothing in this format may crash the worker -------------------------------------


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
    def set_(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
        def f(event: dict[str, Any]) -> Any:
            target = event
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            return event

        return f

    def trait(name: str, value: Any) -> Callable[[dict[str, Any]], Any]:
        def f(event: dict[str, Any]) -> Any:
            event["traits"] = [[n, t, value if n == name else v] for n, t, v in event["traits"]]
            return event

        return f

    return [
        ("traits not a list", set_(("traits",), {"a": 1})),
        ("trait not a triple", set_(("traits",), [["name", 1]])),
        ("trait name not a string", set_(("traits",), [[1, 1, "x"]])),
        ("traits empty", set_(("traits",), [])),
        ("no event_type", set_(("event_type",), None)),
        ("event_type a number", set_(("event_type",), 5)),
        ("generated garbage", set_(("generated",), "yesterday")),
        ("message_id a list", set_(("message_id",), [1])),
        ("raw a string", set_(("raw",), "raw")),
        ("raw without payload", set_(("raw",), {"event_type": "compute.instance.update"})),
        ("memory_mb text", trait("memory_mb", "lots")),
        ("vcpus a dict", trait("vcpus", {"n": 1})),
        ("instance_id empty", trait("instance_id", "")),
        ("state a list", trait("state", ["active"])),
        ("launched_at garbage", trait("launched_at", "not a date")),
        ("display_name None", trait("display_name", None)),
        ("raw_only payload a list", lambda e: {RAW_ONLY: [1], "received_at": "x"}),
        ("raw_only garbage time", lambda e: wrap_raw_only({"instance_id": "i", "tenant_id": 7})),
        ("bare list of numbers", lambda e: [1, 2, 3]),
        ("nested batches", lambda e: [[e]]),
    ]


@pytest.mark.parametrize("name,mutate", _mutations(), ids=[n for n, _ in _mutations()])
def test_malformed_ceilometer_bodies_fail_cleanly(name, mutate):
    base = published(watcher("instance-create-end"), store_raw=False)
    body = mutate(copy.deepcopy(base))
    try:
        run(body)
    except BadPayload:
        pass
