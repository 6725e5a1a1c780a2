"""sync.apply.bulk.load_rows: Django's rows, built without Model.__init__."""

from __future__ import annotations

import pytest
from django.db import connection, models, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext

from sync.apply import apply, bulk
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudHost, CloudPort

pytestmark = pytest.mark.django_db

FIELDS = [f.attname for f in CloudHost._meta.concrete_fields]
BIG = 2**70 + 1  # no float is equal to it


def _hosts(provider) -> models.QuerySet:
    apply(provider, [
        Change(Kind.HOST, Op.UPSERT, f"vm-{n}", {
            "hostname": f"web-{n}", "status": "active", "flavor": "m1",
            "metadata": {"big": BIG, "nested": {"a": [1, 2.5, None, "é"]}},
            "tags": ["x", "y"], "port_ids": [f"p-{n}"], "launched_at": "2024-01-01T00:00:00Z",
        }, make_version(1)) for n in range(3)
    ] + [Change(Kind.HOST, Op.DELETE, "vm-gone", {}, make_version(2))])
    return CloudHost.all_objects.filter(cloudprovider=provider).order_by("pk")


def _same(loaded, expected) -> None:
    assert [type(r) for r in loaded] == [type(r) for r in expected]
    for got, want in zip(loaded, expected, strict=True):
        assert {n: getattr(got, n) for n in FIELDS} == {n: getattr(want, n) for n in FIELDS}
        assert repr([getattr(got, n) for n in FIELDS]) == repr([getattr(want, n) for n in FIELDS])
        assert got._state.adding is False and got._state.db == want._state.db


def test_rows_equal_what_django_loads(provider):
    qs = _hosts(provider)
    loaded = bulk.load_rows(qs)
    _same(loaded, list(qs))
    row = loaded[0]
    assert row.metadata == {"big": BIG, "nested": {"a": [1, 2.5, None, "é"]}}
    assert type(row.metadata["big"]) is int
    assert row.launched_at.utcoffset().total_seconds() == 0
    # a loaded row behaves as a Django row: relations, saves, refreshes
    assert row.cloudflavor.flavor_id == "m1" and row.cloudprovider == provider
    row.hostname = "renamed"
    row.save(update_fields=["hostname"])
    assert CloudHost.all_objects.get(pk=row.pk).hostname == "renamed"


def test_locked_rows_are_loaded_with_their_lock(provider):
    qs = bulk.locked(_hosts(provider))
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        loaded = bulk.load_rows(qs)
    assert any(q["sql"].endswith("FOR NO KEY UPDATE") for q in queries) == (
        connection.vendor == "postgresql")
    with transaction.atomic():
        _same(loaded, list(qs))


def test_a_model_with_init_receivers_is_built_by_django(provider):
    seen = []

    def receiver(sender, instance, **kwargs) -> None:
        seen.append(instance.pk)

    qs = _hosts(provider)
    signals.post_init.connect(receiver, sender=CloudHost)
    try:
        loaded = bulk.load_rows(qs)
    finally:
        signals.post_init.disconnect(receiver, sender=CloudHost)
    assert seen == [r.pk for r in loaded] and len(seen) == 4


def test_partial_querysets_are_left_to_django(provider):
    qs = _hosts(provider).only("hostname")
    loaded = bulk.load_rows(qs)
    assert [r.get_deferred_fields() for r in loaded] == [r.get_deferred_fields() for r in qs]
    assert loaded[0].get_deferred_fields() != set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="built by Django elsewhere")
def test_ports_round_trip(provider):
    apply(provider, [Change(Kind.HOST_IP, Op.UPSERT, "port-1",
                            {"host": "vm-1", "addresses": ["10.0.0.1", "fe80::1"]},
                            make_version(1))])
    qs = CloudPort.all_objects.filter(cloudprovider=provider)
    loaded = bulk.load_rows(qs)
    fields = [f.attname for f in CloudPort._meta.concrete_fields]
    assert [{n: getattr(r, n) for n in fields} for r in loaded] == [
        {n: getattr(r, n) for n in fields} for r in qs]
    assert loaded[0].addresses and loaded[0].host_id is not None


def test_empty_and_non_model_querysets_are_as_django_gives_them(provider):
    qs = _hosts(provider)
    assert bulk.load_rows(qs.none()) == [] and bulk.load_rows(qs.filter(pk__in=[])) == []
    assert bulk.load_rows(qs.values_list("host_id", flat=True)) == list(
        qs.values_list("host_id", flat=True))
    rows = bulk.load_rows(qs.prefetch_related("ips"))
    assert all("ips" in r._prefetched_objects_cache for r in rows)


def test_a_big_integer_in_metadata_survives_applies(provider):
    """Re-applying the same metadata changes nothing, and a neighbour's
    change in the same chunk does not rewrite it as a float. (Review.)"""
    def h(ext, version, **fields):
        return Change(Kind.HOST, Op.UPSERT, ext, fields, make_version(version))

    apply(provider, [h("vm-1", 1, metadata={"big": BIG}), h("vm-2", 1, metadata={})])
    result = apply(provider, [h("vm-1", 1, metadata={"big": BIG})])
    assert dict(result.counts["host"]) == {"unchanged": 1}
    apply(provider, [h("vm-1", 2, hostname="x"), h("vm-2", 2, metadata={"k": "v"})])
    assert CloudHost.objects.get(cloudprovider=provider, host_id="vm-1").metadata == {"big": BIG}
