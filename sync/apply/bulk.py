"""Bulk reads and writes of synced rows for ``sync.apply``.

On Postgres the hot statements are written by hand (``unnest`` arrays): Django's
``bulk_update`` builds a CASE WHEN per row and field (about 1 ms of Python per
row) and ``bulk_create`` prepares every field of every row; measured in
bench/fullsync.py (100k servers: 384 s -> 70 s). Other databases use the ORM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from datetime import date, datetime, time
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from operator import itemgetter
from typing import Any
from uuid import UUID

import psycopg
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, OperationalError, connections, models
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import signals
from django.db.models.base import ModelState
from django.db.models.query import ModelIterable

from sync import jsontext
from sync.models import CloudProvider, SyncedModel
from sync.models.lookups import TextArray

__all__ = [
    "ConcurrentInsert", "bulk_update", "copy_rows", "ensure_rows", "insert_built", "insert_ignoring_conflicts",
    "insert_placeholders", "insert_rows", "load_rows", "locked", "ref_ids",
    "share_lock",
]


# How long inserting built rows may wait on another transaction's insert of
# the same object before apply() is redone with placeholders.
LOCK_WAIT_MS = 50


class ConcurrentInsert(Exception):  # noqa: N818 (a signal to redo, not an error shown to anyone)
    """Rows ``ensure_rows`` built in memory (``built``) were inserted by
    another transaction before ours could, or are being inserted by one
    (waited for no longer than ``LOCK_WAIT_MS``): the apply that built them
    must be redone with placeholders (``sync.apply.apply`` does, once)."""


def ensure_rows(
    provider: CloudProvider, model: type[SyncedModel], ids: Sequence[str], *, lock: bool,
    built: set[int] | None = None,
) -> dict[str, SyncedModel]:
    """Rows for these external ids, inserting placeholders for missing ones.

    With ``built`` (Postgres only), missing rows are not inserted: they are
    built in memory as placeholders would be, with primary keys drawn from
    the table's sequence (one statement), and their pks added to ``built``.
    The caller inserts them once, with their final values (``insert_built``):
    one write per new row instead of a placeholder INSERT and an UPDATE."""
    idf = model.external_id_field
    qs = model.all_objects.filter(cloudprovider=provider)
    if lock:
        qs = locked(qs)
    rows = {getattr(r, idf): r for r in load_rows(qs.filter(**{f"{idf}__any": ids}))}
    # Sorted: concurrent transactions insert overlapping new ids in one order.
    missing = sorted(i for i in ids if i not in rows)
    if missing and built is not None and connections[qs.db].vendor == "postgresql":
        pks = _allocate_pks(model, len(missing))
        made = _placeholder_rows(provider, model, list(zip(pks, missing, strict=True)))
        rows.update({getattr(r, idf): r for r in made})
        built.update(pks)
        return rows
    if missing:
        inserted = insert_placeholders(provider, model, missing, load=True)
        # What we inserted is ours (and locked) already; only rows another
        # transaction inserted meanwhile are read (and locked) here.
        rows.update({getattr(r, idf): r for r in inserted})
        if len(inserted) < len(missing):
            rows.update({getattr(r, idf): r for r in load_rows(qs.filter(
                **{f"{idf}__any": [i for i in missing if i not in rows]}))})
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
    provider: CloudProvider, model: type[SyncedModel], ids: Sequence[str], *, load: bool = False
) -> list[SyncedModel]:
    """``bulk_create(..., ignore_conflicts=True)`` of placeholder rows; with
    ``load``, returns the rows inserted (not those another transaction
    inserted first; none on other databases than Postgres). On Postgres one ``INSERT ...
    SELECT ... FROM unnest(ids) ON CONFLICT DO NOTHING RETURNING``: every row
    but its id has the same (default) values, so they are prepared once
    instead of once per row and field."""
    idf = model.external_id_field
    connection = connections[model.all_objects.db]
    if connection.vendor != "postgresql":
        model.all_objects.bulk_create(
            [model(cloudprovider=provider, **{idf: i}) for i in ids], ignore_conflicts=True
        )
        return []
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
    pk_field = model._meta.pk
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(columns)}, {qn(id_field.column)}) "
        f"SELECT {', '.join(values)}, x FROM unnest(%s::text[]) AS x ON CONFLICT DO NOTHING"
    )
    if load:
        sql += f" RETURNING {qn(pk_field.column)}, {qn(id_field.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, TextArray(ids)])
        returned = cursor.fetchall() if load else []
    return _placeholder_rows(provider, model, returned, template)


def _placeholder_rows(
    provider: CloudProvider, model: type[SyncedModel], keys: Sequence[tuple[int, str]],
    template: SyncedModel | None = None,
) -> list[SyncedModel]:
    """Placeholder rows with these (pk, external id), as the database holds
    them after ``insert_placeholders``: the template's values but pk and id
    (no per-row decoding of what was sent); mutable defaults (JSON) are fresh
    objects per row, as Django's would be."""
    if not keys:
        return []
    idf = model.external_id_field
    if template is None:
        template = model(cloudprovider=provider, **{idf: ""})
        for f in model._meta.concrete_fields:
            if not f.primary_key and f.attname != idf:
                setattr(template, f.attname, f.pre_save(template, True))
    fields = model._meta.concrete_fields
    names = [f.attname for f in fields]
    base = [getattr(template, f.attname) for f in fields]
    fresh = [(n, f) for n, f in enumerate(fields) if isinstance(base[n], dict | list)]
    at_pk, at_id = names.index(model._meta.pk.attname), names.index(idf)
    values_list = []
    for pk, external_id in keys:
        values = base.copy()
        values[at_pk], values[at_id] = pk, external_id
        for n, f in fresh:
            values[n] = f.get_default()
        values_list.append(values)
    return _instances(model, model.all_objects.db, names, values_list)


def _instances(
    model: type[models.Model], db: str, names: list[str], rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """``[model.from_db(db, names, values) for values in rows]`` (every
    concrete field given, in order) without ``Model.__init__`` per row: its
    pre/post_init signals and a descriptor call per foreign key cost more than
    the rest of loading a row. Where a receiver listens to those signals,
    Django's own path."""
    if (signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)
            or model.__init__ is not models.Model.__init__ or model.from_db.__func__
            is not models.Model.from_db.__func__):
        return [model.from_db(db, names, values) for values in rows]
    new = object.__new__
    out = []
    for values in rows:
        obj = new(model)
        state = ModelState()
        state.adding, state.db = False, db
        obj.__dict__.update(zip(names, values, strict=True))
        obj._state = state
        out.append(obj)
    return out


def load_rows(qs: models.QuerySet) -> list[Any]:
    """``list(qs)`` for a queryset of whole model rows (no ``only``/``defer``,
    annotations or ``select_related``) on Postgres: the same instances,
    built by ``_instances``, with JSON columns decoded by orjson (Django's
    ``json.loads`` per value was a tenth of an event batch's Python time).
    Other converters are applied as Django applies them."""
    model = qs.model
    connection = connections[qs.db]
    query = qs.query
    if (connection.vendor != "postgresql" or qs._iterable_class is not ModelIterable
            or query.deferred_loading != (frozenset(), True) or query.annotations
            or query.select_related or query.extra or qs._prefetch_related_lookups):
        return list(qs)
    fields = model._meta.concrete_fields
    names = [f.attname for f in fields]
    compiler = qs.values_list(*names).query.get_compiler(qs.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:  # (``none()``, ``__in=[]``)
        return []
    converters = compiler.get_converters([col for col, _, _ in compiler.select])
    plan = []
    for n, (funcs, expression) in converters.items():
        json_field = getattr(expression, "target", None)
        if (getattr(type(json_field), "from_db_value", None) is models.JSONField.from_db_value
                and json_field.decoder is None):  # (not a subclass decoding its own way)
            funcs = [f for f in funcs if getattr(f, "__func__", None) is not
                     models.JSONField.from_db_value]
            plan.append((n, _json_value, None))
        plan.extend((n, func, expression) for func in funcs)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if plan:
        rows = [list(row) for row in rows]
        for row in rows:
            for n, func, expression in plan:
                row[n] = func(row[n]) if expression is None else func(
                    row[n], expression, connection)
    return _instances(model, qs.db, names, rows)


def _json_value(value: Any) -> Any:
    """``JSONField.from_db_value`` for a jsonb column (psycopg hands it over
    as text), by ``jsontext.loads``."""
    if value is None:
        return None
    try:
        return jsontext.loads(value)
    except json.JSONDecodeError:
        return value


def _allocate_pks(model: type[SyncedModel], n: int) -> list[int]:
    """``n`` new primary keys from the table's identity sequence, ascending."""
    connection = connections[model.all_objects.db]
    meta = model._meta
    key = (connection.alias, meta.db_table)
    with connection.cursor() as cursor:
        if key not in _SEQUENCES:  # (looked up once per process and table)
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [meta.db_table, meta.pk.column])
            _SEQUENCES[key] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [_SEQUENCES[key], n]
        )
        return sorted(pk for (pk,) in cursor.fetchall())


_SEQUENCES: dict[tuple[str, str], str] = {}


def insert_built(model: type[SyncedModel], rows: list[SyncedModel]) -> None:
    """Insert rows ``ensure_rows`` built (pks included), in pk order, with
    ``COPY``; raises ``ConcurrentInsert`` if another transaction inserted one
    of their external ids first (its row wins, ours must be redone against
    it), or is inserting one and has not committed within ``LOCK_WAIT_MS``.
    (Either way the statement failed: apply()'s savepoint or transaction
    is rolled back before it is redone.)"""
    if not rows:
        return
    connection = connections[model.all_objects.db]
    meta = model._meta
    # Never wait here while holding the chunk's locks: another batch may have
    # inserted one of these ids (a placeholder it names, unlocked) and wait on
    # a row this one holds, a deadlock. Give up within LOCK_WAIT_MS (well
    # under Postgres's deadlock_timeout, 1 s by default, so the timeout comes
    # first); apply() then redoes with placeholders, inserted before this
    # kind's rows are written. The session's own lock_timeout is put back
    # after the COPY (a failed COPY aborts the transaction or savepoint,
    # which puts it back itself: the setting is transaction-local).
    set_wait = (
        "SELECT set_config('cloudsync.lock_timeout', current_setting('lock_timeout'), true), "
        f"set_config('lock_timeout', '{LOCK_WAIT_MS}ms', true)"
    )
    reset = "SELECT set_config('lock_timeout', current_setting('cloudsync.lock_timeout'), true)"
    fields = list(meta.concrete_fields)
    try:
        with connection.cursor() as cursor:
            cursor.execute(set_wait)
            copy_rows(connection, model, fields, _tuples(
                connection, fields, sorted(rows, key=lambda r: r.pk)))
            cursor.execute(reset)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        raise ConcurrentInsert(
            f"new {meta.verbose_name_plural}: another transaction is inserting one of them"
        ) from exc
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "23505":  # unique_violation
            raise
        raise ConcurrentInsert(
            f"new {meta.verbose_name_plural}: one of them was inserted by another transaction first"
        ) from exc


def copy_rows(
    connection: Any, model: type[models.Model], fields: Sequence[models.Field],
    rows: Iterable[Sequence[Any]],
) -> int:
    """``COPY <table> (<fields>) FROM STDIN`` of ``rows`` (Postgres; tuples of
    database values in ``fields`` order: what ``_tuples`` makes), as one
    statement that Django's execute wrappers and query log see like any
    other. Returns how many rows were written.

    Why COPY: an ``INSERT ... SELECT FROM jsonb_to_recordset(<rows>)`` has
    Postgres parse the whole document as ``jsonb`` and then every record out
    of it; COPY reads each value with its column's input function and
    nothing else (20,000 history entries: 0.32 -> 0.18 s; 10,000 hosts
    0.38 -> 0.18 s). It has no ``ON CONFLICT`` and no ``RETURNING``: only for
    rows nothing else can have inserted (or whose conflict is an error)."""
    qn = connection.ops.quote_name
    sql = (f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
           "FROM STDIN")

    def run(sql: str, params: Any, many: bool, context: dict[str, Any]) -> int:
        # (as Django's own executor: wrappers see Django's exceptions)
        connection.validate_no_broken_transaction()
        raw = context["cursor"].cursor
        with connection.wrap_database_errors:
            try:
                with raw.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            except UnicodeEncodeError as exc:  # (a lone surrogate: refused as the server would)
                raise psycopg.DataError(f"text the database cannot hold: {exc}") from exc
        return raw.rowcount

    with connection.cursor() as cursor:
        logged = cursor.debug_sql(sql) if isinstance(cursor, CursorDebugWrapper) else nullcontext()
        with logged:
            return cursor._execute_with_wrappers(sql, None, False, run)


def _tuples(
    connection: Any, fields: Sequence[models.Field], rows: Sequence[models.Model]
) -> list[list]:
    """The rows' values for ``copy_rows``, field by field as ``_recordset``
    renders them (JSON as its text, blank addresses as NULL)."""
    for f in fields:
        if getattr(f, "auto_now_add", False) and rows:
            # As Django's INSERT sets it (on the row too), once per statement.
            stamp = f.pre_save(rows[0], True)
            for r in rows:
                setattr(r, f.attname, stamp)
    names = [f.attname for f in fields]
    pick = itemgetter(*names) if len(names) > 1 else lambda values: (values[names[0]],)
    convert = [(n, get) for n, f in enumerate(fields)
               if (get := _copy_value(f, connection)) is not None]
    out = []
    for r in rows:
        try:
            values = list(pick(r.__dict__))
        except KeyError:  # (a deferred field: getattr loads it)
            values = [getattr(r, name) for name in names]
        for n, get in convert:
            values[n] = get(values[n])
        out.append(values)
    return out


def _copy_value(f: models.Field, connection: Any) -> Callable[[Any], Any] | None:
    """How a Python value of ``f`` becomes what COPY takes (None: as it is;
    psycopg renders ints, text, booleans, datetimes)."""
    if isinstance(f, models.JSONField):
        return _json_text
    if f.get_internal_type() == "GenericIPAddressField":
        # Text the inet column parses (and normalizes) itself; blank is NULL, as in Django.
        return lambda v: v or None
    if f.get_internal_type() in _AS_IS:
        return None
    return lambda v: f.get_db_prep_save(v, connection)


def _as_copied(f: models.Field, value: Any, connection: Any) -> Any:
    get = _copy_value(f, connection)
    return value if get is None else get(value)


def _json_text(value: Any) -> str | None:
    """A JSON column's value as its text (None is SQL NULL, as in Django)."""
    return None if value is None else jsontext.dumps(value, default=_plain)


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
    found = dict(qs.filter(**{f"{idf}__any": list(ids)}).values_list(idf, "pk"))
    missing = sorted(i for i in ids if i not in found)
    if missing:
        # What we inserted comes back (RETURNING); only rows another
        # transaction inserted first are read.
        for row in insert_placeholders(provider, model, missing, load=True):
            found[getattr(row, idf)] = row.pk
        if rest := [i for i in missing if i not in found]:
            found.update(qs.filter(**{f"{idf}__any": rest}).values_list(idf, "pk"))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | IPv4Address | IPv6Address):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in a bulk statement")


# Field types whose Python value is what the database column takes (datetimes
# are written in ISO form by ``_plain``): no per-value preparation needed.
_AS_IS = frozenset({
    "AutoField", "BigAutoField", "BigIntegerField", "BooleanField", "CharField",
    "DateTimeField", "FloatField", "ForeignKey", "IntegerField", "PositiveIntegerField",
    "PositiveSmallIntegerField", "SmallIntegerField", "TextField",
})


def _recordset(
    connection: Any, fields: Sequence[models.Field], rows: Sequence[models.Model]
) -> tuple[str, str]:
    """The rows as one JSON document for ``jsonb_to_recordset`` and its column
    list. One text parameter: psycopg quotes it in C, where arrays of text
    would be escaped element by element in Python (most of the cost of a
    bulk statement with JSON bodies)."""
    getters = []
    for f in fields:
        if getattr(f, "auto_now_add", False) and rows:
            # As Django's INSERT sets it (on the row too), once per statement.
            stamp = f.pre_save(rows[0], True)
            for r in rows:
                setattr(r, f.attname, stamp)
            getters.append(None)
        elif f.get_internal_type() == "GenericIPAddressField":
            # Text the inet column parses (and normalizes) itself; blank is NULL, as in Django.
            getters.append(lambda f, r: getattr(r, f.attname) or None)
        elif isinstance(f, models.JSONField) or f.get_internal_type() in _AS_IS:
            getters.append(None)  # the attribute itself (JSON None is SQL NULL, as in Django)
        else:
            getters.append(lambda f, r: f.get_db_prep_save(getattr(r, f.attname), connection))
    plain = [(f"c{n}", f.attname) for n, (f, get) in enumerate(zip(fields, getters, strict=True))
             if get is None]
    prepared = [(f"c{n}", f, get) for n, (f, get) in enumerate(zip(fields, getters, strict=True))
                if get is not None]
    data = []
    for r in rows:
        values = r.__dict__  # a deferred field is not there: getattr loads it
        item = {name: values[attname] if attname in values else getattr(r, attname)
                for name, attname in plain}
        for name, f, get in prepared:
            item[name] = get(f, r)
        data.append(item)
    text = jsontext.dumps(data, default=_plain)
    columns = ", ".join(
        f"c{n} {'jsonb' if isinstance(f, models.JSONField) else _cast_type(f, connection)}"
        for n, f in enumerate(fields)
    )
    return text, columns


def bulk_update(model: type[models.Model], rows: list[models.Model], fields: list[str]) -> None:
    """``bulk_update`` without its CASE WHEN per row and field (which costs
    ~1 ms of ORM expression building per row): on Postgres one
    ``UPDATE ... FROM jsonb_to_recordset(<the rows>)``, a short statement
    whatever the number of rows."""
    manager = model._base_manager
    connection = connections[manager.db]
    if connection.vendor != "postgresql":
        manager.bulk_update(rows, fields)
        return
    if not rows:
        return
    meta = model._meta
    cols = [meta.pk, *(meta.get_field(name) for name in fields)]
    qn = connection.ops.quote_name
    text, columns = _recordset(connection, cols, rows)
    sets = ", ".join(f"{qn(f.column)} = v.c{n}" for n, f in enumerate(cols) if n)
    sql = (
        f"UPDATE {qn(meta.db_table)} AS t SET {sets} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({columns}) WHERE t.{qn(meta.pk.column)} = v.c0"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [text])


def insert_rows(
    model: type[models.Model], names: Sequence[str], rows: list[list[Any]],
    same: dict[str, Any] | None = None,
) -> None:
    """Insert rows given as lists of values of the fields ``names``
    (attnames; no model instances: they cost more than the statement when
    there are thousands); ``same`` holds values every row shares. JSON field
    values may hold what ``_plain`` renders (datetimes: ISO text), on every
    database. On Postgres one ``COPY`` (``copy_rows``); the row lists are
    extended in place."""
    if not rows:
        return
    same = same or {}
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[name] for name in names]
    manager = model._base_manager
    connection = connections[manager.db]
    if connection.vendor != "postgresql":
        json_at = [n for n, f in enumerate(fields) if isinstance(f, models.JSONField)]
        objs = []
        for row in rows:
            for n in json_at:  # (as the Postgres statement's JSON text renders them)
                row[n] = json.loads(jsontext.dumps(row[n], default=_plain))
            objs.append(model(**dict(zip(names, row, strict=True)), **same))
        manager.bulk_create(objs)
        return
    shared = [by_attname[name] for name in same]
    tail = [_as_copied(f, same[f.attname], connection) for f in shared]
    convert = [(n, get) for n, f in enumerate(fields)
               if (get := _copy_value(f, connection)) is not None]
    for row in rows:
        for n, get in convert:
            row[n] = get(row[n])
        if tail:
            row.extend(tail)
    copy_rows(connection, model, [*fields, *shared], rows)


def insert_ignoring_conflicts(
    model: type[models.Model], rows: list[models.Model], *, returning: Sequence[str] = ()
) -> list[tuple] | None:
    """``bulk_create(rows, ignore_conflicts=True)``; on Postgres one
    ``INSERT ... SELECT FROM jsonb_to_recordset(...) ON CONFLICT DO NOTHING``
    (Django's bulk_create prepares and quotes every value of every row).

    With ``returning`` (column names), Postgres returns those columns of the
    rows actually inserted (not of the conflicting ones); other databases
    return None (the caller must read the rows back)."""
    return _insert(model, rows, on_conflict=" ON CONFLICT DO NOTHING", returning=returning)


def _insert(
    model: type[models.Model], rows: list[models.Model], *, on_conflict: str,
    returning: Sequence[str] = (),
) -> list[tuple] | None:
    manager = model._base_manager
    connection = connections[manager.db]
    if connection.vendor != "postgresql":
        manager.bulk_create(rows, ignore_conflicts=bool(on_conflict))
        return None
    if not rows:
        return []
    meta = model._meta
    cols = [f for f in meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    text, columns = _recordset(connection, cols, rows)
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in cols)}) "
        f"SELECT {', '.join(f'v.c{n}' for n in range(len(cols)))} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({columns}){on_conflict}"
    )
    if returning:
        sql += f" RETURNING {', '.join(qn(meta.get_field(name).column) for name in returning)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [text])
        return list(cursor.fetchall()) if returning else []
