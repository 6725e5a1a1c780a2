"""sync.apply.bulk.copy_rows: new rows, address rows and history entries
are written with COPY; what it writes is what the values are, and the
statement is seen like any other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from sync.apply import apply, bulk
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudHost, CloudHostIP, HistoryEntry

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's"),
]

# What COPY's text format must escape (tab, newline, backslash, carriage
# return), what JSON escapes (quotes, backslashes), and beyond ASCII.
AWKWARD = 'tab\there, line\nbreak, back\\slash, cr\r, quote " and é ✓ \\N'


def test_new_rows_hold_exactly_their_values(provider):
    # given a new host whose text, JSON and time fields hold what COPY must escape
    launched = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    change = Change(Kind.HOST, Op.UPSERT, "vm-\\odd\tid", {
        "hostname": AWKWARD, "status": "active", "hypervisor": "\\N",
        "metadata": {"k": AWKWARD, "nested": {"list": [1, 2.5, None, True, AWKWARD]}},
        "tags": [AWKWARD, ""], "launched_at": launched.isoformat(),
        "addresses": ["10.0.0.1", "fe80::1"],
    }, make_version(1))
    # when apply creates it (one COPY of the built row, one of its address rows)
    with CaptureQueriesContext(connection) as queries:
        apply(provider, [change])
    # then every value reads back as it was given
    row = CloudHost.all_objects.get(cloudprovider=provider)
    assert row.host_id == "vm-\\odd\tid"
    assert (row.hostname, row.hypervisor, row.launched_at) == (AWKWARD, "\\N", launched)
    assert row.metadata == {"k": AWKWARD, "nested": {"list": [1, 2.5, None, True, AWKWARD]}}
    assert row.tags == [AWKWARD, ""]
    assert sorted(CloudHostIP.objects.filter(host=row).values_list("address", flat=True)) == [
        "10.0.0.1", "fe80::1"]
    entry = HistoryEntry.objects.get(object_pk=row.pk)
    assert entry.changes["hostname"] == ["", AWKWARD]
    copies = [q["sql"] for q in queries if q["sql"].startswith("COPY ")]
    assert [c.split()[1] for c in copies] == [
        '"sync_cloudhost"', '"sync_cloudhostip"', '"sync_historyentry"']


def test_execute_wrappers_see_each_copy_with_its_row_count(provider):
    seen = []

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        seen.append((sql.split()[0], sql.split()[1], context["cursor"].rowcount))
        return result

    # when three new hosts with two addresses each are applied under a wrapper
    with connection.execute_wrapper(wrapper):
        apply(provider, [
            Change(Kind.HOST, Op.UPSERT, f"vm-{n}", {
                "hostname": f"web-{n}", "addresses": [f"10.0.0.{n}", f"10.0.1.{n}"]},
                make_version(1)) for n in range(3)
        ])
    # then the wrapper saw each COPY, with the rows it wrote
    assert [s for s in seen if s[0] == "COPY"] == [
        ("COPY", '"sync_cloudhost"', 3), ("COPY", '"sync_cloudhostip"', 6),
        ("COPY", '"sync_historyentry"', 3)]


def test_a_value_the_database_refuses_is_a_django_error_and_rolls_back(provider):
    # given an address row whose kind holds a NUL (no PostgreSQL text can)
    rows = [[None, "10.0.0.9", 4, "fixed\x00", ""]]
    # when it is copied inside a transaction that goes on afterwards
    with transaction.atomic():
        with pytest.raises(DataError), transaction.atomic():
            bulk.insert_rows(CloudHostIP, ["host_id", "address", "version", "kind", "mac"], rows)
        # then the error is Django's (what the batch's isolation handles), the
        # savepoint rolled back, and the connection still works
        bulk.insert_rows(CloudHostIP, ["host_id", "address", "version", "kind", "mac"],
                         [[None, "10.0.0.10", 4, "fixed", ""]])
    assert list(CloudHostIP.objects.values_list("address", flat=True)) == ["10.0.0.10"]


def test_a_text_field_given_something_else_is_stored_alike_new_or_not(provider):
    # given an existing host, and changes (from a lax driver) that give text
    # fields a boolean, a list and a number
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-old", {"hostname": "x"}, make_version(1))])
    odd = {"hostname": True, "hypervisor": ["a", "b"], "status": 3}
    # when one host is created with them (COPY) and the other updated (UPDATE)
    apply(provider, [Change(Kind.HOST, Op.UPSERT, ext, odd, make_version(2))
                     for ext in ("vm-new", "vm-old")])
    # then both rows hold the same text, and history says what the rows hold
    rows = CloudHost.all_objects.filter(cloudprovider=provider).values_list(
        "host_id", "hostname", "hypervisor")
    assert sorted(rows) == [("vm-new", "true", '["a", "b"]'), ("vm-old", "true", '["a", "b"]')]
    new = HistoryEntry.objects.get(external_id="vm-new")
    assert new.changes["hostname"] == ["", "true"]


def test_a_lone_surrogate_is_refused_as_a_django_data_error(provider):
    with pytest.raises(DataError), transaction.atomic():
        bulk.insert_rows(CloudHostIP, ["host_id", "address", "version", "kind", "mac"],
                         [[None, "10.0.0.9", 4, "fixed\ud800", ""]])
    assert not CloudHostIP.objects.exists()
