"""The generic driver: its schema, its error messages, the exact Changes and
Snapshots it produces, version ordering, and the published schema view."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import path
from jsonschema import Draft202012Validator

from sync.changes import FIELDS, Change, Kind, Op, Source, make_version
from sync.choices import HostStatusChoices
from sync.drivers.base import BadPayload, ConfigError, Snapshot, body_hash
from sync.drivers.generic import GenericDriver, document_errors, load_schema, to_version
from sync.drivers.registry import get_driver
from sync.schema_views import generic_schema

# the view is mounted by the project's urls; these tests mount it themselves
urlpatterns = [path("cloud-sync/schema/generic.json", generic_schema)]

driver = GenericDriver()

HOST = {
    "kind": "host",
    "op": "upsert",
    "id": "vm-1",
    "version": "2024-05-01T10:00:00Z",
    "fields": {
        "hostname": "web-1",
        "status": "active",
        "flavor": "m1.small",
        "image": "img-1",
        "project": "p-1",
        "hypervisor": "cmp-3",
        "tags": ["prod"],
        "metadata": {"team": "web"},
        "addresses": [
            {"address": "10.0.0.5", "kind": "fixed", "mac": "FA:16:3E:00:00:01"},
            {"address": "2001:db8::5", "kind": "fixed"},
            {"address": "203.0.113.9", "kind": "floating", "mac": None},
        ],
        "launched_at": "2024-05-01T09:58:00+02:00",
    },
}
FLAVOR = {
    "kind": "flavor",
    "op": "upsert",
    "id": "m1.small",
    "version": "2024-04-01T00:00:00Z",
    "fields": {
        "name": "m1.small",
        "cores": 2,
        "memory": 2048,
        "disk": 20,
        "extra_specs": {"hw:numa": "1"},
        "is_public": True,
    },
}


def errors_of(doc) -> str:
    with pytest.raises(BadPayload) as exc:
        driver.translate(doc, {})
    return str(exc.value)


# -- the schema itself -----------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_registered():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert isinstance(get_driver("generic"), GenericDriver)


def test_schema_fields_match_the_change_contract():
    """The published per-kind fields are exactly sync.changes.FIELDS, and host
    statuses exactly the model's choices: the schema cannot drift from the core."""
    defs = load_schema()["$defs"]
    for kind in Kind:
        assert set(defs[f"{kind.value}Fields"]["properties"]) == set(FIELDS[kind]), kind
    assert set(defs["kind"]["enum"]) == {k.value for k in Kind}
    statuses = set(defs["hostFields"]["properties"]["status"]["enum"]) - {None}
    assert statuses == set(HostStatusChoices.values)


# -- changes documents -----------------------------------------------------


def test_changes_document_becomes_exact_changes():
    doc = {
        "id": "batch-1",
        "changes": [
            FLAVOR,
            HOST,
            {"kind": "image", "op": "delete", "id": "img-0", "version": "2024-05-02T00:00:00Z"},
        ],
    }
    translation = driver.translate(doc, {})
    assert translation.snapshot is None and translation.ignored is None
    assert translation.changes == [
        Change(
            Kind.FLAVOR,
            Op.UPSERT,
            "m1.small",
            FLAVOR["fields"],
            make_version(datetime(2024, 4, 1, tzinfo=UTC)),
            Source.EVENT,
            "batch-1",
        ),
        Change(
            Kind.HOST,
            Op.UPSERT,
            "vm-1",
            HOST["fields"],
            make_version(datetime(2024, 5, 1, 10, tzinfo=UTC)),
            Source.EVENT,
            "batch-1",
        ),
        Change(
            Kind.IMAGE,
            Op.DELETE,
            "img-0",
            {},
            make_version(datetime(2024, 5, 2, tzinfo=UTC)),
            Source.EVENT,
            "batch-1",
        ),
    ]


def test_every_kind_and_null_clears_are_accepted():
    doc = {
        "changes": [
            {
                "kind": "project",
                "op": "upsert",
                "id": "p-1",
                "version": 1,
                "fields": {"name": "Web", "domain": "default", "enabled": True},
            },
            {
                "kind": "image",
                "op": "upsert",
                "id": "img-1",
                "version": 2,
                "fields": {
                    "name": "Debian",
                    "status": "active",
                    "os_distro": "debian",
                    "os_version": "12",
                    "architecture": "x86_64",
                    "min_disk": 2,
                    "min_ram": 0,
                    "visibility": "public",
                },
            },
            {
                "kind": "host_ip",
                "op": "upsert",
                "id": "port-1",
                "version": 3,
                "fields": {
                    "host": "vm-1",
                    "addresses": [{"address": "10.0.0.7", "version": 4, "port_id": "port-1"}],
                },
            },
            {
                "kind": "host_ip",
                "op": "upsert",
                "id": "fip:1",
                "version": 4,
                "fields": {"port_id": "port-1", "host": None},
            },
            {
                "kind": "host",
                "op": "upsert",
                "id": "vm-1",
                "version": 5,
                "fields": {"flavor": None, "hostname": None, "status": None, "launched_at": None},
            },
            {"kind": "host", "op": "delete", "id": "vm-2", "version": 6, "fields": {}},
        ]
    }
    changes = driver.translate(doc, {}).changes
    assert [c.version for c in changes] == [make_version(i) for i in range(1, 7)]
    assert changes[-1].op == Op.DELETE and changes[-1].fields == {}
    assert changes[4].fields == {
        "flavor": None,
        "hostname": None,
        "status": None,
        "launched_at": None,
    }


def test_empty_changes_document_is_ignored():
    assert (
        driver.translate({"id": "nothing", "changes": []}, {}).ignored
        == "the document holds no changes"
    )


def test_versions_order_like_the_values_they_encode():
    stamps = [
        "2024-05-01T10:00:00+02:00",
        "2024-05-01 08:30:00",
        "2024-05-01T09:00:00.000001Z",
        "2024-05-01T09:00:01Z",
        "2025-01-01",
    ]
    keys = [to_version(s) for s in stamps]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # 08:00 UTC written with a zone equals 08:00 written in UTC
    assert to_version("2024-05-01T10:00:00+02:00") == to_version("2024-05-01T08:00:00Z")
    numbers = [0, 2, 10, 99, 1_000, 999_999_999_999]
    assert [to_version(n) for n in numbers] == sorted(to_version(n) for n in numbers)
    assert to_version(9) < to_version(10)  # not a lexicographic trap


def test_mixed_version_forms_in_one_document_are_rejected():
    doc = {"changes": [dict(FLAVOR, version=7), HOST]}
    message = errors_of(doc)
    assert "$.changes[1].version: is a timestamp but $.changes[0].version is an integer" in message


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("hello", "$: 'hello' is not of type 'object'"),
        ({}, "$: 'changes' is a required property"),
        (
            {"changes": [], "extra": 1},
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        ({"changes": [dict(HOST, kind="vm")]}, "$.changes[0].kind: 'vm' is not one of"),
        (
            {"changes": [dict(HOST, op="create")]},
            "$.changes[0].op: 'create' is not one of ['upsert', 'delete']",
        ),
        ({"changes": [dict(HOST, id="")]}, "$.changes[0].id: must be a non-blank string"),
        ({"changes": [dict(HOST, id="   ")]}, "$.changes[0].id: must be a non-blank string"),
        (
            {"changes": [{k: v for k, v in HOST.items() if k != "version"}]},
            "$.changes[0]: 'version' is a required property",
        ),
        (
            {"changes": [dict(HOST, version="yesterday")]},
            "$.changes[0].version: must be an ISO 8601 timestamp (string) or an integer",
        ),
        (
            {"changes": [dict(HOST, version=-1)]},
            "$.changes[0].version: must be an ISO 8601 timestamp",
        ),
        (
            {"changes": [dict(HOST, version=10**12)]},
            "$.changes[0].version: must be an ISO 8601 timestamp",
        ),
        (
            {"changes": [dict(HOST, version=1.5)]},
            "$.changes[0].version: must be an ISO 8601 timestamp",
        ),
        (
            {"changes": [dict(HOST, version=True)]},
            "$.changes[0].version: must be an ISO 8601 timestamp",
        ),
        (
            {"changes": [dict(HOST, version="2024-02-30T00:00:00Z")]},
            "$.changes[0].version: '2024-02-30T00:00:00Z' is not a valid date and time",
        ),
        (
            {"changes": [dict(FLAVOR, fields={"cores": "four"})]},
            "$.changes[0].fields.cores: 'four' is not of type 'integer', 'null'",
        ),
        (
            {"changes": [dict(FLAVOR, fields={"memory": -1})]},
            "$.changes[0].fields.memory: -1 is less than the minimum of 0",
        ),
        (
            {"changes": [dict(FLAVOR, fields={"cpus": 2})]},
            "$.changes[0].fields: Additional properties are not allowed ('cpus' was unexpected)",
        ),
        (
            {"changes": [dict(HOST, fields={"status": "running"})]},
            "$.changes[0].fields.status: 'running' is not one of ['building'",
        ),
        (
            {"changes": [dict(HOST, fields={"tags": "prod"})]},
            "$.changes[0].fields.tags: 'prod' is not of type 'array'",
        ),
        (
            {"changes": [dict(HOST, fields={"metadata": {"n": 1}})]},
            "$.changes[0].fields.metadata.n: 1 is not of type 'string'",
        ),
        (
            {"changes": [dict(HOST, fields={"flavor": ""})]},
            "$.changes[0].fields.flavor: must be an external id",
        ),
        (
            {"changes": [dict(HOST, fields={"launched_at": "soon"})]},
            "$.changes[0].fields.launched_at: must be an ISO 8601 timestamp",
        ),
        (
            {"changes": [dict(HOST, fields={"addresses": "10.0.0.1"})]},
            "$.changes[0].fields.addresses: '10.0.0.1' is not of type 'array'",
        ),
        (
            {"changes": [dict(HOST, fields={"addresses": [{"address": "10.0.0.300"}]})]},
            '$.changes[0].fields.addresses[0].address: must be an IPv4 or IPv6 address, got "10.0.0.300"',
        ),
        (
            {"changes": [dict(HOST, fields={"addresses": [{"kind": "fixed"}]})]},
            "$.changes[0].fields.addresses[0]: 'address' is a required property",
        ),
        (
            {
                "changes": [
                    dict(HOST, fields={"addresses": [{"address": "10.0.0.1", "kind": "public"}]})
                ]
            },
            "$.changes[0].fields.addresses[0].kind: 'public' is not one of ['fixed', 'floating']",
        ),
        (
            {
                "changes": [
                    dict(HOST, fields={"addresses": [{"address": "10.0.0.1", "mac": "nope"}]})
                ]
            },
            "$.changes[0].fields.addresses[0].mac: must be a MAC address",
        ),
        (
            {
                "changes": [
                    dict(HOST, fields={"addresses": [{"address": "10.0.0.1", "version": 5}]})
                ]
            },
            "$.changes[0].fields.addresses[0].version: 5 is not one of [4, 6]",
        ),
        (
            {"changes": [dict(HOST, op="delete")]},
            "$.changes[0].fields: must be empty or absent for a delete",
        ),
        (
            {"changes": [dict(FLAVOR, fields={"name": "x" * 256})]},
            "$.changes[0].fields.name: 'xxxxxxxx",
        ),
        (
            {
                "changes": [
                    {
                        "kind": "image",
                        "op": "upsert",
                        "id": "i",
                        "version": 1,
                        "fields": {"min_ram": 2**31},
                    }
                ]
            },
            "$.changes[0].fields.min_ram: 2147483648 is greater than the maximum",
        ),
        (
            {
                "changes": [
                    {
                        "kind": "project",
                        "op": "upsert",
                        "id": "p",
                        "version": 1,
                        "fields": {"enabled": "yes"},
                    }
                ]
            },
            "$.changes[0].fields.enabled: 'yes' is not of type 'boolean', 'null'",
        ),
    ],
)
def test_invalid_documents_say_where_and_what(doc, expected):
    message = errors_of(doc)
    assert message.startswith("invalid generic document: ")
    assert expected in message


def test_every_error_of_a_document_is_reported_in_document_order():
    bad = [dict(FLAVOR, id=f"f{i}", fields={"cores": "x"}) for i in range(12)]
    errors = document_errors({"changes": bad})
    assert [e.split(":")[0] for e in errors] == [f"$.changes[{i}].fields.cores" for i in range(12)]
    message = errors_of({"changes": bad})
    assert "$.changes[9].fields.cores" in message and "$.changes[10]" not in message
    assert message.endswith("(and 2 more)")


def test_a_document_with_one_bad_change_is_rejected_whole():
    """All-or-nothing: the good changes are not applied either."""
    with pytest.raises(BadPayload):
        driver.translate({"changes": [FLAVOR, dict(HOST, fields={"cores": 1})]}, {})


# -- snapshot documents ----------------------------------------------------


def snapshot_doc(**extra):
    return {
        "snapshot": True,
        "kinds": ["host", "flavor"],
        "objects": [
            {k: v for k, v in FLAVOR.items() if k != "op"},
            {k: v for k, v in HOST.items() if k != "op"},
        ],
        **extra,
    }


def test_snapshot_document_becomes_a_snapshot_of_full_sync_upserts():
    doc = snapshot_doc(
        id="snap-7", taken_at="2024-05-01T12:00:00Z", scopes={"host": ["p-1", "p-2"]}
    )
    translation = driver.translate(doc, {})
    assert translation.changes == [] and translation.ignored is None
    snapshot = translation.snapshot
    assert isinstance(snapshot, Snapshot)
    assert snapshot.kinds == frozenset({Kind.HOST, Kind.FLAVOR})
    assert snapshot.scopes == {Kind.HOST: frozenset({"p-1", "p-2"})}
    assert snapshot.started_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert list(snapshot.changes) == [
        Change(
            Kind.FLAVOR,
            Op.UPSERT,
            "m1.small",
            FLAVOR["fields"],
            make_version(datetime(2024, 4, 1, tzinfo=UTC)),
            Source.FULL_SYNC,
        ),
        Change(
            Kind.HOST,
            Op.UPSERT,
            "vm-1",
            HOST["fields"],
            make_version(datetime(2024, 5, 1, 10, tzinfo=UTC)),
            Source.FULL_SYNC,
        ),
    ]


def test_snapshot_defaults_whole_provider_and_run_start():
    snapshot = driver.translate(snapshot_doc(), {}).snapshot
    assert snapshot.scopes is None and snapshot.started_at is None


def test_an_empty_snapshot_is_valid():
    """An empty cloud is a real state; the mass-delete guard, not the schema,
    protects against a producer that lost its listing."""
    snapshot = driver.translate({"snapshot": True, "kinds": ["host"], "objects": []}, {}).snapshot
    assert list(snapshot.changes) == [] and snapshot.kinds == {Kind.HOST}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"snapshot": True, "objects": []}, "$: 'kinds' is a required property"),
        ({"snapshot": True, "kinds": [], "objects": []}, "$.kinds: [] should be non-empty"),
        ({"snapshot": False, "kinds": ["host"], "objects": []}, "$.snapshot: True was expected"),
        (
            {"snapshot": True, "kinds": ["host", "host"], "objects": []},
            "$.kinds: ['host', 'host'] has non-unique elements",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "scopes": {"flavor": ["p"]}, "objects": []},
            "$.scopes: names a kind whose deletions cannot be scoped",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "scopes": {"project": ["p"]}, "objects": []},
            "$.scopes.project: 'project' is not one of the listed kinds",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "scopes": {"host": "p"}, "objects": []},
            "$.scopes.host: 'p' is not of type 'array'",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "taken_at": "noon", "objects": []},
            "$.taken_at: must be an ISO 8601 timestamp",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "objects": [dict(HOST)]},
            "$.objects[0]: Additional properties are not allowed ('op' was unexpected)",
        ),
        (
            {
                "snapshot": True,
                "kinds": ["host"],
                "objects": [
                    {"kind": "host", "id": "a", "version": 1},
                    {"kind": "host", "id": "b", "version": "2024-01-01T00:00:00Z"},
                ],
            },
            "$.objects[1].version: is a timestamp but $.objects[0].version is an integer",
        ),
        (
            {
                "snapshot": True,
                "kinds": ["host"],
                "objects": [{"kind": "host", "id": "a", "version": 1, "fields": {"cores": 2}}],
            },
            "$.objects[0].fields: Additional properties are not allowed ('cores' was unexpected)",
        ),
        (
            {"snapshot": True, "kinds": ["host"], "objects": [], "changes": []},
            "Additional properties are not allowed ('changes' was unexpected)",
        ),
    ],
)
def test_invalid_snapshots_say_where_and_what(doc, expected):
    assert expected in errors_of(doc)


# -- describe / config -----------------------------------------------------


def test_describe_uses_document_id_else_body_hash():
    assert driver.describe({"id": "doc-1", "changes": []}).key == "doc-1"
    body = {"changes": [HOST]}
    assert driver.describe(body).key == body_hash(body)
    assert driver.describe(body).event_type == "generic.changes"
    assert driver.describe({"id": 5, "changes": []}).key == body_hash({"id": 5, "changes": []})
    assert driver.describe(["not", "a", "document"]).key == body_hash(["not", "a", "document"])
    info = driver.describe(snapshot_doc(taken_at="2024-05-01T12:00:00Z"))
    assert info.event_type == "generic.snapshot"
    assert info.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_changes_carry_the_dedup_key_as_source_ref():
    body = {"changes": [HOST]}
    assert driver.translate(body, {}).changes[0].source_ref == body_hash(body)


def test_config_takes_no_keys():
    assert driver.validate_config({}) == {}
    with pytest.raises(ConfigError) as exc:
        driver.validate_config({"region": "r1"})
    assert exc.value.errors == {"region": "unknown key: the generic driver takes no client_config"}
    with pytest.raises(ConfigError):
        driver.validate_config(["not", "a", "mapping"])


# -- the published schema --------------------------------------------------


@pytest.mark.urls(__name__)
def test_schema_is_served_as_json_schema(client):
    response = client.get("/cloud-sync/schema/generic.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    assert json.loads(response.content) == load_schema()
    etag = response["ETag"]
    assert client.get("/cloud-sync/schema/generic.json", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.head("/cloud-sync/schema/generic.json").status_code == 200
    assert client.post("/cloud-sync/schema/generic.json").status_code == 405


def test_docs_publish_the_same_schema():
    """docs/generic.md embeds the schema verbatim: producers read the truth."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "generic.md").read_text()
    block = text.split("<!-- schema:begin -->", 1)[1].split("<!-- schema:end -->", 1)[0]
    block = block.strip().removeprefix("```json").removesuffix("```")
    assert json.loads(block) == load_schema()


def test_documented_examples_are_valid():
    """Every example document in docs/generic.md passes the driver."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "generic.md").read_text()
    text = text.split("<!-- schema:begin -->", 1)[0]
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    documents = [e for e in examples if "changes" in e or "snapshot" in e]
    assert len(documents) == 2
    for document in documents:
        translation = driver.translate(document, {})
        assert translation.changes or translation.snapshot


def test_documented_error_example_is_what_the_driver_says():
    doc = {
        "changes": [
            dict(FLAVOR, version=1, fields={"cores": "four"}),
            dict(HOST, version="yesterday"),
        ]
    }
    assert errors_of(doc) == (
        "invalid generic document: $.changes[0].fields.cores: 'four' is not of type 'integer', 'null'; "
        "$.changes[1].version: must be an ISO 8601 timestamp (string) or an integer from 0 to 999999999999, "
        'got "yesterday"'
    )
