"""``apply()``: the only code that writes inventory rows.

Events, catch-ups and full syncs all end here. The rules (DESIGN §5):

* idempotent: the same change twice leaves the same state;
* ordered per field: each field remembers the version that set it
  (``field_versions``); a change sets a field only if it is at least as new,
  so an older change never overwrites newer data but may still fill a field
  no newer change has spoken about, and every order of the same changes
  converges to the same row;
* tombstones: a delete always wins and keeps the row (``deleted_at``) with the
  highest version seen; only a full sync listing the object with a newer
  version brings it back. Events never resurrect;
* references (flavor, image, project, host) are external ids; unknown ones
  get placeholder rows, so an event never fails because its flavor is late;
* concurrency: the rows of a batch are locked (``select_for_update``, in pk
  order) inside one short transaction; missing rows are inserted first with
  ``ON CONFLICT DO NOTHING`` so two workers never race on a create.

Work is done per kind in bulk: a handful of queries per batch, not per change.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, models, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from sync.changes import Change, Kind, Op, Source, parse_timestamp
from sync.choices import HostIPKindChoices, HostStatusChoices
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    CloudProvider,
    SyncedModel,
)

__all__ = ["ApplyResult", "Outcome", "apply", "MODEL_FOR_KIND"]

MODEL_FOR_KIND: dict[Kind, type[SyncedModel]] = {
    Kind.PROJECT: CloudProject,
    Kind.FLAVOR: CloudFlavor,
    Kind.IMAGE: CloudImage,
    Kind.HOST: CloudHost,
    Kind.HOST_IP: CloudPort,
}
# Referenced kinds first, so their rows exist when referrers are written.
KIND_ORDER = (Kind.PROJECT, Kind.FLAVOR, Kind.IMAGE, Kind.HOST, Kind.HOST_IP)
CHUNK = 1000


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    STALE = "stale"


@dataclass
class ApplyResult:
    """What an apply did: counts per kind and outcome, and each change's outcome."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    outcomes: list[tuple[Change, str]] = field(default_factory=list)
    # external id -> {field: [old, new]} per kind, when asked (dry runs, drift reports)
    diffs: dict[str, dict[str, dict[str, list]]] | None = None

    def add(self, change: Change, outcome: str) -> None:
        self.counts[change.kind.value][outcome] += 1
        self.outcomes.append((change, outcome))

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {kind: dict(counter) for kind, counter in sorted(self.counts.items())}

    def merge(self, other: ApplyResult) -> None:
        for kind, counter in other.counts.items():
            self.counts[kind].update(counter)
        self.outcomes.extend(other.outcomes)
        if other.diffs and self.diffs is not None:
            for kind, objs in other.diffs.items():
                self.diffs.setdefault(kind, {}).update(objs)


def apply(
    provider: CloudProvider,
    changes: Iterable[Change],
    *,
    now: datetime | None = None,
    keep_outcomes: bool = True,
    record_diffs: bool = False,
    listed_at: datetime | None = None,
) -> ApplyResult:
    """Apply changes to one provider's inventory in one transaction.

    ``record_diffs`` also reports, per object, each field's old and new value.
    ``listed_at`` (full syncs): when the listing began. A listed object whose
    tombstone is older than that exists after all and comes back, whatever
    the versions say (a cloud's ``updated_at`` may predate our deletion).
    """
    now = now or timezone.now()
    by_kind: dict[Kind, list[Change]] = defaultdict(list)
    for change in changes:
        by_kind[change.kind].append(change)
    result = ApplyResult(diffs={} if record_diffs else None)
    with transaction.atomic():
        for kind in KIND_ORDER:
            group = by_kind.get(kind)
            for start in range(0, len(group or ()), CHUNK):
                _KindApplier(
                    provider, kind, group[start : start + CHUNK], now, result, listed_at
                ).run()
    if not keep_outcomes:
        result.outcomes.clear()
    return result


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _ensure_rows(
    provider: CloudProvider, model: type[SyncedModel], ids: Sequence[str], *, lock: bool
) -> dict[str, SyncedModel]:
    """Rows for these external ids, inserting placeholders for missing ones."""
    idf = model.external_id_field
    qs = model.all_objects.filter(cloudprovider=provider)
    if lock:
        qs = qs.select_for_update().order_by("pk")
    rows = {getattr(r, idf): r for r in qs.filter(**{f"{idf}__in": ids})}
    # Sorted: concurrent transactions insert overlapping new ids in one order.
    missing = sorted(i for i in ids if i not in rows)
    if missing:
        _insert_placeholders(provider, model, missing)
        rows.update({getattr(r, idf): r for r in qs.filter(**{f"{idf}__in": missing})})
    return rows


def _insert_placeholders(
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


def _ref_ids(
    provider: CloudProvider, model: type[SyncedModel], ids: set[str]
) -> dict[str, int]:
    """Primary keys of referenced objects, creating placeholders (unlocked).
    Only (external id, pk) pairs are read: no model instances."""
    if not ids:
        return {}
    idf = model.external_id_field
    qs = model.all_objects.filter(cloudprovider=provider)
    found = dict(qs.filter(**{f"{idf}__in": list(ids)}).values_list(idf, "pk"))
    missing = sorted(i for i in ids if i not in found)
    if missing:
        _insert_placeholders(provider, model, missing)
        found.update(qs.filter(**{f"{idf}__in": missing}).values_list(idf, "pk"))
    return found


def _bulk_update(model: type[SyncedModel], rows: list[SyncedModel], fields: list[str]) -> None:
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
                [None if v is None else json.dumps(f.get_prep_value(v), cls=f.encoder) for v in values]
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


def _address_rows(addresses: Any) -> list[tuple[str, int, str, str]]:
    """Normalize an ``addresses`` list to sorted (address, version, kind, mac)."""
    out = set()
    for item in addresses or ():
        if isinstance(item, str):
            item = {"address": item}
        try:
            ip = ipaddress.ip_address(str(item.get("address", "")).strip())
        except ValueError:
            continue  # a garbage address is dropped, not fatal to the whole change
        kind = item.get("kind") or HostIPKindChoices.FIXED
        if kind not in HostIPKindChoices.values:
            kind = HostIPKindChoices.FIXED
        out.add((str(ip), ip.version, kind, str(item.get("mac") or "").lower()))
    return sorted(out)


_BOOKKEEPING = frozenset({"source_version", "field_versions", "last_synced_by", "last_event_at"})
# Changed on every row a sync touches; alone, they do not make a row "modified".
_SYNC_MARKS = frozenset({"last_synced_by"})


# What a late upsert may not change on a tombstone: it stays deleted, addressless.
_TOMBSTONE_FIXED = frozenset({"status", "addresses", "port_ids"})


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a field value for stored diffs."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _parent_port(change: Change) -> str:
    """The port a floating IP is bound to ("" for a port's own id or none)."""
    value = str(change.fields.get("port_id") or "")
    return "" if value == change.external_id else value


class _KindApplier:
    """Applies one chunk of changes of one kind."""

    def __init__(
        self,
        provider: CloudProvider,
        kind: Kind,
        changes: list[Change],
        now: datetime,
        result: ApplyResult,
        listed_at: datetime | None = None,
    ) -> None:
        self.provider = provider
        self.listed_at = listed_at
        self.kind = kind
        self.model = MODEL_FOR_KIND[kind]
        self.changes = changes
        self.now = now
        self.result = result
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.seen: set[int] = set()
        self.addresses: dict[int, list] = {}  # row pk -> new address rows
        self.port_sets: dict[int, tuple[list[str], str]] = {}  # host pk -> (port ids, version)
        self.version = ""  # of the change being applied
        self.refs: dict[str, dict[str, int]] = {}
        self.row_pks: list[int] = []

    # -- driver ------------------------------------------------------------
    def run(self) -> None:
        ids = list(dict.fromkeys(c.external_id for c in self.changes))
        rows = _ensure_rows(self.provider, self.model, ids, lock=True)
        self.row_pks = [r.pk for r in rows.values()]
        self._resolve_refs()
        for change in self.changes:
            row = rows[change.external_id]
            self.result.add(change, self._apply_one(row, change))
        self._flush(rows)

    def _resolve_refs(self) -> None:
        wanted: dict[str, set[str]] = defaultdict(set)
        for change in self.changes:
            if change.op != Op.UPSERT:
                continue
            f = change.fields
            if self.kind == Kind.HOST:
                for name in ("flavor", "image", "project"):
                    if f.get(name):
                        wanted[name].add(str(f[name]))
            elif self.kind == Kind.HOST_IP and f.get("host"):
                wanted["host"].add(str(f["host"]))
        models_for = {
            "flavor": CloudFlavor,
            "image": CloudImage,
            "project": CloudProject,
            "host": CloudHost,
        }
        self.refs = {
            name: _ref_ids(self.provider, models_for[name], ids) for name, ids in wanted.items()
        }

    # -- one change --------------------------------------------------------
    def _apply_one(self, row: SyncedModel, change: Change) -> str:
        self.seen.add(row.pk)
        self.version = change.version
        if change.op == Op.DELETE:
            return self._delete(row, change)
        is_new = row.is_placeholder
        tombstoned = row.deleted_at is not None
        if tombstoned and change.source == Source.FULL_SYNC and (
            change.version > row.source_version
            or (self.listed_at is not None and row.deleted_at < self.listed_at)
        ):
            self._set(row, "deleted_at", None)  # a full sync found it alive again
            row.field_versions = {}
            is_new, tombstoned = True, False
        previous = row.source_version
        versions = dict(row.field_versions or {})
        changed = won = False
        for attr, value in self._values(change).items():
            if change.version < versions.get(attr, ""):
                continue  # a newer change already set this field
            if tombstoned and attr in _TOMBSTONE_FIXED:
                continue
            won = True
            if self._differs(row, attr, value):
                self._set(row, attr, value)
                changed = True
            if change.version > versions.get(attr, ""):
                versions[attr] = change.version
        if versions != row.field_versions:
            self._set(row, "field_versions", versions)
        if change.version > previous:
            self._set(row, "source_version", change.version)
        if tombstoned:
            # Late news about a deleted object: kept on the tombstone (so
            # every order converges) but it stays deleted.
            return Outcome.STALE
        if won or is_new:
            self._touch(row, change)
        if is_new:
            return Outcome.CREATED
        if changed:
            return Outcome.UPDATED
        return Outcome.UNCHANGED if change.version >= previous else Outcome.STALE

    def _delete(self, row: SyncedModel, change: Change) -> str:
        if change.version > row.source_version:
            self._set(row, "source_version", change.version)
        if row.deleted_at is not None:
            return Outcome.UNCHANGED
        self._set(row, "deleted_at", self.now)
        if self.kind == Kind.HOST:
            self._set(row, "status", HostStatusChoices.DELETED)
        if self.kind in (Kind.HOST, Kind.HOST_IP):
            self.addresses[row.pk] = []
        self._touch(row, change)
        return Outcome.DELETED

    def _touch(self, row: SyncedModel, change: Change) -> None:
        ref = f"{change.source.value}:{change.source_ref}" if change.source_ref else ""
        if ref and row.last_synced_by != ref:
            self._set(row, "last_synced_by", ref[:200])
        if change.source == Source.EVENT:
            self._set(row, "last_event_at", self.now)

    def _set(self, row: SyncedModel, attr: str, value: Any) -> None:
        if self.result.diffs is not None and attr not in _BOOKKEEPING:
            old = self._current(row, attr)
            diff = self.result.diffs.setdefault(self.kind.value, {})
            diff.setdefault(row.external_id, {})[attr] = [_plain(old), _plain(value)]
        if attr == "addresses":
            self.addresses[row.pk] = value
            return
        if attr == "port_ids":
            self.port_sets[row.pk] = (value, self.version)
            return
        setattr(row, attr, value)
        self.dirty[row.pk].add(attr)

    # -- field mapping -----------------------------------------------------
    def _values(self, change: Change) -> dict[str, Any]:
        """Change fields -> model attribute values (references resolved)."""
        values: dict[str, Any] = {}
        for name, value in change.fields.items():
            if name == "host" and self.kind == Kind.HOST_IP and _parent_port(change):
                continue  # a floating IP follows the host of its port (_relink_ports)
            if name in ("flavor", "image", "project", "host"):
                attr = {"flavor": "cloudflavor_id", "image": "image_id", "project": "project_id"}
                attr = attr.get(name, "host_id")
                values[attr] = self.refs[name][str(value)] if value else None
                if name == "image":
                    values["image_ref"] = str(value or "")
            elif name == "addresses":
                values["addresses"] = _address_rows(value)
            elif name == "port_ids":
                values["port_ids"] = sorted({str(p) for p in value or ()})
            elif name == "port_id":
                values["parent_port_id"] = _parent_port(change)
            elif name == "launched_at":
                values[name] = parse_timestamp(value)
            elif name in ("tags",):
                values[name] = list(value or [])
            elif name in ("metadata", "extra_specs"):
                values[name] = dict(value or {})
            elif value is None and self._is_text(name):
                values[name] = ""
            else:
                values[name] = value
        return values

    def _is_text(self, attr: str) -> bool:
        field_ = self.model._meta.get_field(attr)
        return isinstance(field_, models.CharField | models.TextField)

    def _current_addresses(self, row: SyncedModel) -> list:
        if row.pk in self.addresses:
            return self.addresses[row.pk]
        if row.is_placeholder:
            return []
        if not hasattr(self, "_loaded_addresses"):
            self._loaded_addresses = self._load_addresses()
        return self._loaded_addresses.get(row.pk, [])

    def _load_addresses(self) -> dict[int, list]:
        pks = self.row_pks
        loaded: dict[int, list] = defaultdict(list)
        owner = "port_id" if self.kind == Kind.HOST_IP else "host_id"
        qs = CloudHostIP.objects.filter(**{f"{owner}__in": pks})
        if self.kind == Kind.HOST:
            qs = qs.filter(port__isnull=True)
        for ip in qs.values_list(owner, "address", "version", "kind", "mac"):
            loaded[ip[0]].append(tuple(ip[1:]))
        return {k: sorted(v) for k, v in loaded.items()}

    def _current_ports(self, row: SyncedModel) -> list[str]:
        if row.pk in self.port_sets:
            return self.port_sets[row.pk][0]
        if row.is_placeholder:
            return []
        if not hasattr(self, "_loaded_ports"):
            loaded: dict[int, list[str]] = defaultdict(list)
            ports = CloudPort.objects.filter(host_id__in=self.row_pks, parent_port_id="")
            for host_id, port_id in ports.values_list("host_id", "port_id"):
                loaded[host_id].append(port_id)
            self._loaded_ports = {k: sorted(v) for k, v in loaded.items()}
        return self._loaded_ports.get(row.pk, [])

    def _current(self, row: SyncedModel, attr: str) -> Any:
        if attr == "addresses":
            return self._current_addresses(row)
        if attr == "port_ids":
            return self._current_ports(row)
        return getattr(row, attr)

    def _differs(self, row: SyncedModel, attr: str, value: Any) -> bool:
        return self._current(row, attr) != value

    # -- write -------------------------------------------------------------
    def _flush(self, rows: dict[str, SyncedModel]) -> None:
        by_pk = {r.pk: r for r in rows.values()}
        # Rows whose only change is who synced them last (a no-change full
        # sync: same versions, same values, same addresses) are not rewritten
        # field by field: one UPDATE per ref sets that and last_seen_at, and
        # their modified_at stays (nothing about the object changed).
        seen_only: dict[str, list[int]] = defaultdict(list)
        dirty_rows, fields = [], set()
        for pk, attrs in self.dirty.items():
            if attrs <= _SYNC_MARKS and pk not in self.addresses and pk not in self.port_sets:
                seen_only[by_pk[pk].last_synced_by].append(pk)
            else:
                dirty_rows.append(by_pk[pk])
                fields |= attrs
        if dirty_rows:
            for row in dirty_rows:
                row.modified_at = self.now
                row.last_seen_at = self.now  # every dirty row was seen
            _bulk_update(self.model, dirty_rows, [*sorted(fields), "modified_at", "last_seen_at"])
        rest = self.seen.difference(row.pk for row in dirty_rows)
        qs = self.model.all_objects
        for ref, pks in seen_only.items():
            rest.difference_update(pks)
            qs.filter(pk__in=pks).update(last_seen_at=self.now, last_synced_by=ref)
        if rest:
            qs.filter(pk__in=rest).update(last_seen_at=self.now)
        if self.addresses:
            self._write_addresses(by_pk)
        if self.port_sets:
            self._detach_missing_ports()
        if self.kind == Kind.HOST:
            self._detach_deleted_hosts([pk for pk, r in by_pk.items() if "deleted_at" in self.dirty.get(pk, ()) and r.deleted_at])
        if self.kind == Kind.HOST_IP:
            self._relink_ports(by_pk)

    def _detach_missing_ports(self) -> None:
        """A host's complete port list (``port_ids``) detaches the ports it no
        longer names, unless a newer change attached them."""
        detached: list[int] = []
        for host_pk, (ids, version) in self.port_sets.items():
            ports = CloudPort.objects.filter(host_id=host_pk, parent_port_id="").exclude(
                port_id__in=ids
            )
            for port in ports.only("pk", "field_versions"):
                versions = dict(port.field_versions or {})
                if versions.get("host_id", "") > version:
                    continue
                versions["host_id"] = version
                CloudPort.all_objects.filter(pk=port.pk).update(
                    host_id=None, field_versions=versions, modified_at=self.now
                )
                detached.append(port.pk)
        if detached:
            port_ids = CloudPort.all_objects.filter(pk__in=detached).values("port_id")
            fips = CloudPort.all_objects.filter(
                cloudprovider=self.provider, parent_port_id__in=port_ids
            )
            fip_pks = list(fips.values_list("pk", flat=True))
            fips.update(host_id=None, modified_at=self.now)
            CloudHostIP.objects.filter(port_id__in=[*detached, *fip_pks]).update(host_id=None)

    def _detach_deleted_hosts(self, pks: list[int]) -> None:
        """A deleted host takes its ports' addresses with it (the ENI or port
        died with the VM); floating IPs bound to it stay, unattached."""
        if not pks:
            return
        ports = CloudPort.all_objects.filter(host_id__in=pks)
        ports.exclude(parent_port_id="").update(host_id=None, modified_at=self.now)
        ports.filter(parent_port_id="", deleted_at__isnull=True).update(
            deleted_at=self.now, modified_at=self.now
        )
        ips = CloudHostIP.objects.filter(host_id__in=pks)
        ips.filter(port__isnull=False).exclude(port__parent_port_id="").update(host_id=None)
        ips.delete()

    def _write_addresses(self, by_pk: dict[int, SyncedModel]) -> None:
        pks = list(self.addresses)
        new_rows = []
        if self.kind == Kind.HOST:
            CloudHostIP.objects.filter(host_id__in=pks, port__isnull=True).delete()
            for pk, addrs in self.addresses.items():
                new_rows += [
                    CloudHostIP(host_id=pk, address=a, version=v, kind=k, mac=m)
                    for a, v, k, m in addrs
                ]
        else:
            CloudHostIP.objects.filter(port_id__in=pks).delete()
            for pk, addrs in self.addresses.items():
                host_id = by_pk[pk].host_id if by_pk[pk].deleted_at is None else None
                new_rows += [
                    CloudHostIP(port_id=pk, host_id=host_id, address=a, version=v, kind=k, mac=m)
                    for a, v, k, m in addrs
                ]
        CloudHostIP.objects.bulk_create(new_rows)

    def _relink_ports(self, by_pk: dict[int, SyncedModel]) -> None:
        """Floating IPs follow the host of the port they are bound to."""
        ports = CloudPort.all_objects.filter(cloudprovider=self.provider)
        touched = [r.port_id for r in by_pk.values()]
        parent_host = Subquery(
            CloudPort.objects.filter(
                cloudprovider=self.provider, port_id=OuterRef("parent_port_id")
            ).values("host_id")[:1]
        )
        floating = ports.exclude(parent_port_id="").filter(
            models.Q(port_id__in=touched) | models.Q(parent_port_id__in=touched)
        )
        fip_pks = list(floating.values_list("pk", flat=True))
        if fip_pks:
            CloudPort.all_objects.filter(pk__in=fip_pks).update(host_id=parent_host)
        all_pks = [*by_pk, *fip_pks]
        connection = connections[CloudHostIP.objects.db]
        if connection.vendor == "postgresql":
            # The same, but only rows whose host changes are rewritten (a
            # no-change full sync rewrote every address row).
            qn = connection.ops.quote_name
            ip, port = qn(CloudHostIP._meta.db_table), qn(CloudPort._meta.db_table)
            alive_host = "CASE WHEN p.deleted_at IS NULL THEN p.host_id END"
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {ip} AS i SET host_id = {alive_host} FROM {port} AS p "
                    f"WHERE p.id = i.port_id AND i.port_id = ANY(%s) "
                    f"AND i.host_id IS DISTINCT FROM {alive_host}",
                    [all_pks],
                )
            return
        CloudHostIP.objects.filter(port_id__in=all_pks).update(
            host_id=Subquery(
                CloudPort.all_objects.filter(pk=OuterRef("port_id"), deleted_at__isnull=True)
                .values("host_id")[:1]
            )
        )
