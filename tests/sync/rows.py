"""Physical row versions of the inventory tables (Postgres)."""

from __future__ import annotations

from django.db import connection

INVENTORY_TABLES = ("sync_cloudproject", "sync_cloudflavor", "sync_cloudimage", "sync_cloudhost",
                    "sync_cloudport", "sync_cloudhostip")


def row_versions() -> dict[str, set[tuple[str, str]]]:
    """Every inventory row's physical version (ctid, xmin): any write to a
    row, even one that sets the same values, gives it a new one."""
    with connection.cursor() as cursor:
        out = {}
        for table in INVENTORY_TABLES:
            cursor.execute(f"SELECT ctid::text, xmin::text FROM {table}")
            out[table] = set(cursor.fetchall())
    return out
