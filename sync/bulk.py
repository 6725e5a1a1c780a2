"""Bulk reads and writes of synced rows for ``sync.apply``.

On Postgres the hot statements are written by hand (``unnest`` arrays): Django's
``bulk_update`` builds a CASE WHEN per row and field (about 1 ms of Python per
row) and ``bulk_create`` prepares every field of every row; measured in
bench/fullsync.py (100k servers: 384 s -> 70 s). Other databases use the ORM.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import connections, models

from sync.models import CloudProvider, SyncedModel

__all__ = ["bulk_update", "ensure_rows", "insert_placeholders", "locked", "ref_ids", "share_lock"]


def ensure_rows(
    provider: CloudProvider, model: type[SyncedModel], ids: Sequence[str], *, lock: bool
) -> dict[str, SyncedModel]:
    """Rows for these external ids, inserting placeholders for missing ones."""
    idf = model.external_id_field
    qs = model.all_objects.filter(cloudprovider=provider)
    if lock:
        qs = locked(qs)
    rows = {getattr(r, idf): r for r in qs.filter(**{f"{idf}__in": ids})}
    # Sorted: concurrent transactions insert overlapping new ids in one order.
    missing = sorted(i for i in ids if i not in rows)
    if missing:
        insert_placeholders(provider, model, missing)
        rows.update({getattr(r, idf): r for r in qs.filter(**{f"{idf}__in": missing})})
    return rows


def locked(qs: models.QuerySet) -> models.QuerySet:
    """Rows locked for update, in pk order (so concurrent writers never wait
    on each other in a cycle). On Postgres ``FOR NO KEY UPDATE``: it does not
    block the foreign-key checks of rows that merely reference a locked row
    (a port naming a host, an address naming a port), which would otherwise
    wait on, and deadlock with, the transaction holding it."""
    no_key = connections[qs.db].vendor == "postgresql"
    return qs.select_for_update(no_key=no_key).order_by("pk")


def share_lock(model: type[SyncedModel], pks: Sequence[int]) -> None:
    """``FOR SHARE`` on these rows (Postgres; other databases serialize
    writers themselves): their values must not change until we commit, but
    other readers may share them. Taken before the rows we will write, in pk
    order, like every lock of ``apply``."""
    connection = connections[model.all_objects.db]
    if not pks or connection.vendor != "postgresql":
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {qn(model._meta.db_table)} WHERE {qn(model._meta.pk.column)} "
            f"= ANY(%s) ORDER BY {qn(model._meta.pk.column)} FOR SHARE",
            [sorted(pks)],
        )


def insert_placeholders(
    provider: CloudProvider, model: type[SyncedModel], ids: Sequence[str]
) -> None:
    """``bulk_create(..., ignore_conflicts=True)`` of placeholder rows. On
    Postgres one ``INSERT ... SELECT ... FROM unnest(ids) ON CONFLICT DO
    NOTHING``: every row but its id has the same (default) values, so they
    are prepared once instead of once per row and field."""
    idf = model.external_id_field
    connection = connections[model.all_objects.db]
    if connection.vendor != "postgresql":
        model.all_objects.bulk_create(
            [model(cloudprovider=provider, **{idf: i}) for i in ids], ignore_conflicts=True
        )
        return
    template = model(cloudprovider=provider, **{idf: ""})
    qn = connection.ops.quote_name
    columns, values, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.attname == idf:
            continue
        columns.append(qn(f.column))
        values.append(f"%s::{_cast_type(f, connection)}")
        params.append(f.get_db_prep_save(f.pre_save(template, True), connection))
    id_field = model._meta.get_field(idf)
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(columns)}, {qn(id_field.column)}) "
        f"SELECT {', '.join(values)}, x FROM unnest(%s::text[]) AS x ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, list(ids)])


def _cast_type(f: models.Field, connection: Any) -> str:
    # varchar(n) casts would truncate silently: cast to text, the column
    # assignment then still rejects an over-long value.
    db_type = f.db_type(connection) or "text"
    return "text" if db_type.startswith("varchar") else db_type


def ref_ids(provider: CloudProvider, model: type[SyncedModel], ids: set[str]) -> dict[str, int]:
    """Primary keys of referenced objects, creating placeholders (unlocked).
    Only (external id, pk) pairs are read: no model instances."""
    if not ids:
        return {}
    idf = model.external_id_field
    qs = model.all_objects.filter(cloudprovider=provider)
    found = dict(qs.filter(**{f"{idf}__in": list(ids)}).values_list(idf, "pk"))
    missing = sorted(i for i in ids if i not in found)
    if missing:
        insert_placeholders(provider, model, missing)
        found.update(qs.filter(**{f"{idf}__in": missing}).values_list(idf, "pk"))
    return found


def bulk_update(model: type[SyncedModel], rows: list[SyncedModel], fields: list[str]) -> None:
    """``bulk_update`` without its CASE WHEN per row and field (which costs
    ~1 ms of ORM expression building per row): on Postgres one
    ``UPDATE ... FROM unnest(<one array per column>)``, a short statement
    whatever the number of rows."""
    connection = connections[model.all_objects.db]
    if connection.vendor != "postgresql":
        model.all_objects.bulk_update(rows, fields)
        return
    meta = model._meta
    cols = [meta.pk, *(meta.get_field(name) for name in fields)]
    qn = connection.ops.quote_name
    arrays, sets, args = [], [], []
    for n, f in enumerate(cols):
        if isinstance(f, models.JSONField):  # sent as text, cast per value
            values = (getattr(r, f.attname) for r in rows)  # None is SQL NULL, as in Django
            arrays.append(
                [
                    None if v is None else json.dumps(f.get_prep_value(v), cls=f.encoder)
                    for v in values
                ]
            )
            args.append("%s::text[]")
            value = f"v.c{n}::jsonb"
        else:
            arrays.append([f.get_db_prep_save(getattr(r, f.attname), connection) for r in rows])
            args.append(f"%s::{_cast_type(f, connection)}[]")
            value = f"v.c{n}"
        if n:
            sets.append(f"{qn(f.column)} = {value}")
    names = ", ".join(f"c{n}" for n in range(len(cols)))
    sql = (
        f"UPDATE {qn(meta.db_table)} AS t SET {', '.join(sets)} "
        f"FROM unnest({', '.join(args)}) AS v({names}) WHERE t.{qn(meta.pk.column)} = v.c0"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
