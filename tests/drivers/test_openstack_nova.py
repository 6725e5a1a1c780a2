"""Nova notifications (versioned and legacy) -> the exact expected Changes."""

from __future__ import annotations

import random

import pytest

from sync.changes import Kind, Op
from sync.drivers.openstack.nova import normalize_action
from tests.drivers import Fold, changes, one, run
from tests.fixtures import load_json, load_notigen, load_nova_versioned, with_wire_fields

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"  # InstancePayload.json
TENANT = "6f70656e737461636b20342065766572"
FLAVOR = "a22d5517-147c-4147-a0d1-e698df5cd4e3"  # FlavorPayload.json
IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"
PORT = "ce531f90-199f-48c0-816c-13e38010b442"  # IpPayload.json
PORT_ADDRESS = {"address": "192.168.1.3", "kind": "fixed", "mac": "fa:16:3e:4c:2c:30", "version": 4}


def versioned(name: str) -> dict:
    return with_wire_fields(load_nova_versioned(name), message_id=f"id-{name}")


def host_fields(message: dict) -> dict:
    return dict(one(changes(message), Kind.HOST).fields)


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("instance.update", ("update", None)),
        ("instance.resize_finish.end", ("resize_finish", "end")),
        ("compute.instance.finish_resize.end", ("resize_finish", "end")),
        ("compute.instance.resize.confirm.end", ("resize_confirm", "end")),
        ("compute.instance.live_migration.post.dest.end", ("live_migration_post_dest", "end")),
        ("compute.instance.live_migration._post.end", ("live_migration_post", "end")),
        ("compute.instance.exists.verified", ("exists", None)),
        ("compute.instance.suspend", ("suspend", "end")),
        ("aggregate.create.end", None),
    ],
)
def test_normalize_action(event_type, expected):
    assert normalize_action(event_type) == expected


# -- versioned ------------------------------------------------------------------


def test_versioned_create_end():
    found = changes(versioned("instance-create-end.json"))
    assert [(c.kind, c.op, c.external_id) for c in found] == [
        (Kind.PROJECT, Op.UPSERT, TENANT),
        (Kind.FLAVOR, Op.UPSERT, FLAVOR),
        (Kind.HOST, Op.UPSERT, UUID),
        (Kind.HOST_IP, Op.UPSERT, PORT),
    ]
    project, flavor, host, port = found
    assert project.fields == {}  # no request context in the sample, so no name
    assert flavor.fields == {
        "name": "test_flavor",
        "cores": 1,
        "memory": 512,
        "disk": 1,
        "extra_specs": {"hw:watchdog_action": "disabled"},
        "is_public": True,
    }
    assert host.fields == {
        "hostname": "some-server",
        "status": "active",
        "flavor": FLAVOR,
        "image": IMAGE,
        "project": TENANT,
        "hypervisor": "compute",
        "tags": ["tag"],
        "metadata": {},
        "launched_at": "2012-10-29T13:42:11+00:00",
        "port_ids": [PORT],  # the complete port set: ports not named get detached
    }
    # IPs with a port id are host_ip objects keyed by the port, not host addresses
    assert port.fields == {"host": UUID, "port_id": PORT, "addresses": [PORT_ADDRESS]}
    assert len({c.source_ref for c in found}) == 1


def test_versioned_update():
    fields = host_fields(versioned("instance-update.json"))
    assert fields["status"] == "building"
    assert fields["hostname"] == "some-server"
    assert fields["tags"] == []
    assert "addresses" not in fields  # ip_addresses is [] and every Nova IP has a port
    assert host_fields(versioned("instance-update-tags-action.json"))["tags"] == ["tag1"]


def test_versioned_update_display_name_beats_host_name():
    message = versioned("instance-update.json")
    message["payload"]["nova_object.data"]["display_name"] = "renamed"
    assert host_fields(message)["hostname"] == "renamed"
    message["payload"]["nova_object.data"]["display_name"] = None
    assert host_fields(message)["hostname"] == "some-server"  # host_name


@pytest.mark.parametrize(
    ("sample", "status"),
    [
        ("instance-power_off-end.json", "stopped"),
        ("instance-power_on-end.json", "active"),
        ("instance-pause-end.json", "paused"),
        ("instance-suspend-end.json", "suspended"),
        ("instance-shelve-end.json", "shelved"),
        ("instance-rescue-end.json", "rescued"),
        ("instance-soft_delete-end.json", "soft_deleted"),
        ("instance-restore-end.json", "active"),
        ("instance-reboot-end.json", "active"),
    ],
)
def test_versioned_state_changes_set_the_status_and_state_the_port_set(sample, status):
    found = changes(versioned(sample))
    # every payload lists the ports from the network info cache: each action
    # states the complete port set at its version (the newest statement wins)
    assert one(found, Kind.HOST).fields == {"status": status, "project": TENANT, "port_ids": [PORT]}
    port = one(found, Kind.HOST_IP)
    assert (port.external_id, dict(port.fields)) == (
        PORT,
        {"host": UUID, "port_id": PORT, "addresses": [PORT_ADDRESS]},
    )
    assert port.version == one(found, Kind.HOST).version


def test_versioned_resize_finish_changes_the_flavor():
    found = changes(versioned("instance-resize_finish-end.json"))
    flavor = one(found, Kind.FLAVOR)
    assert flavor.external_id == "d5a8bb54-365a-45ae-abdb-38d249df7845"
    assert flavor.fields == {
        "name": "other_flavor",
        "cores": 1,
        "memory": 256,
        "disk": 1,
        "extra_specs": {"hw:watchdog_action": "reset"},
        "is_public": True,
    }
    assert one(found, Kind.HOST).fields == {
        "status": "resized",
        "flavor": "d5a8bb54-365a-45ae-abdb-38d249df7845",
        "hypervisor": "compute",
        "project": TENANT,
        "port_ids": [PORT],
    }
    assert found.index(flavor) < found.index(one(found, Kind.HOST))


def test_versioned_resize_confirm_and_revert():
    confirm = changes(versioned("instance-resize_confirm-end.json"))
    assert one(confirm, Kind.FLAVOR).external_id == "2"
    assert one(confirm, Kind.FLAVOR).fields["name"] == "m1.small"
    assert one(confirm, Kind.FLAVOR).fields["memory"] == 2048
    assert one(confirm, Kind.FLAVOR).fields["disk"] == 20
    assert one(confirm, Kind.HOST).fields["flavor"] == "2"
    assert host_fields(versioned("instance-resize_revert-end.json"))["flavor"] == FLAVOR


def test_versioned_rebuild_changes_the_image():
    assert host_fields(versioned("instance-rebuild-end.json")) == {
        "status": "active",
        "image": "a2459075-d96c-40d5-893e-577ff92e721c",
        "hypervisor": "compute",
        "project": TENANT,
        "port_ids": [PORT],
    }


def test_versioned_live_migration_moves_the_hypervisor():
    assert host_fields(versioned("instance-live_migration_post_dest-end.json")) == {
        "status": "active",
        "hypervisor": "host2",
        "project": TENANT,
        "port_ids": [PORT],
    }
    # the source host's post.end still names itself: not trusted for the hypervisor
    [source] = run(versioned("instance-live_migration_post-end.json"))
    assert "stale" in source.ignored


def test_versioned_shelve_offload_clears_the_hypervisor():
    assert host_fields(versioned("instance-shelve_offload-end.json")) == {
        "status": "shelved",
        "hypervisor": None,
        "project": TENANT,
        "port_ids": [PORT],
    }


def test_versioned_interface_attach_and_detach_name_the_complete_port_set():
    attach = changes(versioned("instance-interface_attach-end.json"))
    second = "88dae9fa-0dc6-49e3-8c29-3abc41e99ac9"
    assert [(c.kind, c.external_id) for c in attach] == [
        (Kind.PROJECT, TENANT),
        (Kind.HOST, UUID),
        (Kind.HOST_IP, PORT),
        (Kind.HOST_IP, second),
    ]
    assert attach[1].fields == {"port_ids": sorted([PORT, second]), "project": TENANT}
    assert attach[3].fields == {
        "host": UUID,
        "port_id": second,
        "addresses": [
            {"address": "192.168.1.30", "kind": "fixed", "mac": "00:0c:29:0d:11:74", "version": 4}
        ],
    }
    detach = changes(versioned("instance-interface_detach-end.json"))
    assert [(c.kind, c.external_id) for c in detach] == [
        (Kind.PROJECT, TENANT),
        (Kind.HOST, UUID),
        (Kind.HOST_IP, PORT),
    ]
    assert detach[1].fields == {"port_ids": [PORT], "project": TENANT}


@pytest.mark.parametrize(
    "sample",
    [
        "instance-delete-end.json",
        "instance-delete-end_compute_down.json",
        "instance-delete-end_not_scheduled.json",
    ],
)
def test_versioned_delete_end(sample):
    [change] = changes(versioned(sample))
    assert (change.kind, change.op, change.external_id, dict(change.fields)) == (
        Kind.HOST,
        Op.DELETE,
        UUID,
        {},
    )


def test_versioned_errors():
    assert host_fields(versioned("instance-create-error.json")) == {
        "status": "error",
        "project": TENANT,
    }
    build = changes(versioned("compute_task-build_instances-error.json"))
    assert [(c.kind, c.external_id, dict(c.fields)) for c in build] == [
        (Kind.HOST, "d5e6a7b7-80e5-4166-85a3-cd6115201082", {"status": "error"})
    ]
    # the conductor resets a failed migration to the state it had
    assert host_fields(versioned("compute_task-migrate_server-error.json")) == {"status": "active"}
    for sample in ("instance-reboot-error.json", "instance-rebuild-error.json"):
        [result] = run(versioned(sample))
        assert result.ignored and not result.changes


@pytest.mark.parametrize(
    "sample",
    ["instance-create-start.json", "instance-power_off-start.json", "instance-delete-start.json"],
)
def test_versioned_start_events_are_ignored(sample):
    [result] = run(versioned(sample))
    assert ".start" in result.ignored


def test_versioned_flavor_events():
    create = one(changes(versioned("flavor-create.json")), Kind.FLAVOR)
    assert (create.external_id, dict(create.fields)) == (
        FLAVOR,
        {"name": "test_flavor", "cores": 2, "memory": 1024, "disk": 10, "is_public": True},
    )  # extra_specs null (not loaded) is left out, not turned into {}
    update = one(changes(versioned("flavor-update.json")), Kind.FLAVOR)
    assert update.fields["extra_specs"] == {"hw:numa_nodes": "2"}
    assert update.fields["is_public"] is False
    delete = one(changes(versioned("flavor-delete.json")), Kind.FLAVOR, Op.DELETE)
    assert delete.external_id == FLAVOR and not delete.fields


# -- legacy ---------------------------------------------------------------------


def test_legacy_create_end_with_flavor_id():
    found = changes(load_json("nova-legacy/watcher/scenario3_legacy_instance-create-end.json"))
    project, flavor, host = found
    assert (project.kind, project.external_id) == (Kind.PROJECT, "57ab04ad6d3b495789a58258bc00842b")
    assert (flavor.kind, flavor.external_id, dict(flavor.fields)) == (
        Kind.FLAVOR,
        "1",  # instance_flavor_id, not instance_type_id (2)
        {"name": "m1.tiny", "cores": 1, "memory": 512, "disk": 1},
    )
    assert (host.kind, host.external_id) == (Kind.HOST, "c03c0bf9-f46e-4e4f-93f1-817568567ee2")
    assert host.fields == {
        "hostname": "INSTANCE_0",
        "status": "active",
        "flavor": "1",
        "image": "205f96f5-91f9-42eb-9138-03fffcea2b97",
        "project": "57ab04ad6d3b495789a58258bc00842b",
        "hypervisor": "Node_0",
        "metadata": {},
        "launched_at": "2016-08-19T10:20:59.135390+00:00",
        "addresses": [
            {"address": "192.168.1.197", "kind": "fixed", "mac": "fa:16:3e:a3:c0:0f", "version": 4}
        ],
    }
    assert {c.source_ref for c in found} == {"577bfd11-88e0-4044-b8ae-496e3257efe2"}


def test_legacy_create_end_without_flavor_id_sets_no_flavor():
    found = changes(load_json("nova-legacy/designate/compute.instance.create.end.json"))
    assert [c.kind for c in found] == [Kind.PROJECT, Kind.HOST]
    project, host = found
    assert project.fields == {"name": "tenant-name"}  # context project == tenant_id
    assert "flavor" not in host.fields
    assert host.fields["image"] == "e52f1321-fb9e-40fb-8057-555a850462e8"
    assert host.fields["addresses"] == [{"address": "172.16.0.14", "kind": "fixed", "version": 4}]


def test_legacy_fixed_ips_keep_their_floating_ips():
    body = load_json("nova-legacy/watcher/scenario3_legacy_instance-create-end.json")
    body["payload"]["fixed_ips"][0]["floating_ips"] = [{"address": "203.0.113.7"}]
    assert host_fields(body)["addresses"] == [
        {"address": "192.168.1.197", "kind": "fixed", "mac": "fa:16:3e:a3:c0:0f", "version": 4},
        {"address": "203.0.113.7", "kind": "floating", "version": 4},
    ]


def test_legacy_update_with_old_metadata_list():
    fields = host_fields(load_json("nova-legacy/sentry/compute.instance.update.json"))
    assert fields == {
        "hostname": "cirros2",
        "status": "active",
        "image": "42b5bb12-2500-40f9-a30d-4921d66fb2c0",
        "project": "a3577b13ccc4437f884c715691f93177",
        "hypervisor": "ubuntu",
        "metadata": {"test": "test", "para": "test"},
    }


def test_legacy_minimal_update_only_sets_what_it_has():
    """Searchlight's error-during-scheduling update has no host/image keys:
    they must be left alone, not cleared."""
    body = load_json("nova-legacy/searchlight/servers.json")[
        "instance-update-error-during-schedule"
    ]
    assert host_fields(body) == {"status": "error", "project": "b1fbc598025841899f63333269abe1d2"}


def test_legacy_resize_confirm_and_rebuild_and_migration():
    confirm = changes(
        load_json("nova-legacy/watcher/scenario3_legacy_instance-resize-confirm-end.json")
    )
    assert one(confirm, Kind.FLAVOR).external_id == "5a0665e0-d2ec-4e4b-85f9-cc0ce4ab052b"
    assert one(confirm, Kind.FLAVOR).fields == {
        "name": "U2M2D20",
        "cores": 2,
        "memory": 2048,
        "disk": 20,
    }
    assert one(confirm, Kind.HOST).fields["flavor"] == "5a0665e0-d2ec-4e4b-85f9-cc0ce4ab052b"
    rebuild = host_fields(
        load_json("nova-legacy/watcher/scenario3_legacy_instance-rebuild-end.json")
    )
    assert rebuild["image"] == "886eae2b-b41f-4340-acd1-a1b926671b0a"
    moved = host_fields(
        load_json("nova-legacy/watcher/scenario3_legacy_livemigration-post-dest-end.json")
    )
    assert moved == {
        "status": "active",
        "hypervisor": "Node_1",
        "project": "57ab04ad6d3b495789a58258bc00842b",
        # legacy fixed_ips (no port ids): the host's own address set
        "addresses": [
            {"address": "192.168.1.196", "kind": "fixed", "mac": "fa:16:3e:cc:ba:81", "version": 4}
        ],
    }


def test_legacy_delete_end():
    [change] = changes(load_json("nova-legacy/sentry/compute.instance.delete.end.json"))
    assert (change.kind, change.op, change.external_id) == (
        Kind.HOST,
        Op.DELETE,
        "e6e990ec-e277-44bd-a78c-34d8c56bf340",
    )


def test_legacy_create_error_sets_error():
    sample = load_json(
        "nova-legacy/stacktach-notification-schemas-samples/compute-instance-create-error_1.json"
    )
    fields = host_fields({"event_type": "compute.instance.create.error", "payload": sample})
    assert fields == {"status": "error", "project": "232780"}


# -- sequences: any arrival order converges to the in-order result ----------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("compute.instance.resize.prep.start_24.json", {"flavor": "7", "status": "resized"}),
        ("compute.instance.power_off.start_4.json", {"status": "stopped"}),
        ("compute.instance.rebuild.start_24.json", {"status": "active"}),
        # a production sequence where the instance was deleted while building:
        # create.end still reports vm_state "building"
        ("compute.instance.create.start_23.json", {"status": "building", "flavor": "2"}),
    ],
)
def test_notigen_sequences_converge_in_any_order(template, expected):
    messages = load_notigen(template)
    found = [c for m in messages for r in run(m) for c in r.changes]
    host_id = next(c.external_id for c in found if c.kind == Kind.HOST)
    in_order = Fold()
    for change in found:
        in_order.apply(change)
    assert {k: in_order.get(Kind.HOST, host_id)[k] for k in expected} == expected
    for seed in range(5):
        shuffled = found[:]
        random.Random(seed).shuffle(shuffled)
        fold = Fold()
        for change in shuffled:
            fold.apply(change)
        assert fold.rows == in_order.rows


def test_notigen_delete_sequence_ends_deleted_whatever_the_order():
    found = [
        c
        for m in load_notigen("compute.instance.delete.start_8.json")
        for r in run(m)
        for c in r.changes
    ]
    assert found[-1].op == Op.DELETE
    for seed in range(5):
        fold = Fold()
        for change in random.Random(seed).sample(found, len(found)):
            fold.apply(change)
        assert fold.get(Kind.HOST, found[-1].external_id)["_deleted"] is True
