"""``sync.pg_timestamps``: timestamptz values read by psycopg's C loader,
exactly as Django's own (Python) loader reads them."""

from __future__ import annotations

import copy
import datetime

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from sync.models import Event
from sync.pg_timestamps import TIMESTAMPTZ_OID, UtcTimestamptzLoader, is_fast

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a psycopg loader"),
]

LITERALS = [
    "2026-11-29 12:34:56.789012+00",
    "2026-11-29 12:34:56+00",
    "2026-11-29 12:34:56.5+00",
    "1970-01-01 00:00:00+00",
    "1969-12-31 23:59:59.999999+00",
    "2024-02-29 23:59:59.000001+05:30",  # another offset: the same instant in UTC
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]


def _loader_class():
    connection.ensure_connection()
    return connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


def _select(cursor) -> list[datetime.datetime]:
    cursor.execute(
        "SELECT v::timestamptz FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n",
        [LITERALS],
    )
    return [row[0] for row in cursor.fetchall()]


@pytest.mark.skipif(not is_fast(), reason="psycopg's C implementation is not installed")
def test_connections_read_timestamps_with_the_c_loader():
    assert _loader_class() is UtcTimestamptzLoader
    with connection.cursor() as cursor:  # Django registered nothing of its own on the cursor
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is (
            UtcTimestamptzLoader)


def test_values_are_those_djangos_loader_reads():
    with connection.cursor() as cursor:
        ours = _select(cursor)
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's Python loader
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is not (
            UtcTimestamptzLoader)
        djangos = _select(cursor)
    assert ours == djangos
    assert [d.tzinfo for d in ours] == [d.tzinfo for d in djangos] == [datetime.UTC] * len(ours)
    assert [d.isoformat() for d in ours] == [d.isoformat() for d in djangos]
    assert ours[5] == datetime.datetime(2024, 2, 29, 18, 29, 59, 1, tzinfo=datetime.UTC)


def test_model_fields_round_trip(provider):
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    event = Event.objects.create(cloudprovider=provider, key="k", event_type="t",
                                 occurred_at=when, received_at=when, body={})
    again = Event.objects.get(pk=event.pk)
    assert again.occurred_at == when and again.occurred_at.tzinfo is datetime.UTC
    assert Event.objects.filter(received_at=again.received_at).count() == 1


def test_a_connection_in_another_time_zone_keeps_djangos_loader():
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["TIME_ZONE"] = "Europe/Warsaw"
    other = type(connections[DEFAULT_DB_ALIAS])(settings_dict, alias=DEFAULT_DB_ALIAS)
    try:
        other.ensure_connection()
        loader = other.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        assert loader is not UtcTimestamptzLoader
        with other.cursor() as cursor:
            cursor.execute("SELECT '2026-07-01 10:00:00+00'::timestamptz")
            value = cursor.fetchone()[0]
        assert value.utcoffset() == datetime.timedelta(hours=2)  # CEST, as Django reads it
        assert value == datetime.datetime(2026, 7, 1, 10, tzinfo=datetime.UTC)
    finally:
        other.close()


def test_a_session_that_left_utc_still_reads_utc():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Warsaw'")
        try:
            cursor.execute("SELECT '2026-07-01 10:00:00+00'::timestamptz")
            value = cursor.fetchone()[0]
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert value == datetime.datetime(2026, 7, 1, 10, tzinfo=datetime.UTC)
    assert value.tzinfo is datetime.UTC
