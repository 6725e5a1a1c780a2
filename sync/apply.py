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
* port membership (which host a port is on) is derived from registers too:
  a port's newest claim and its host's newest complete port list
  (``sync.addresses``), so it converges like every other field;
* concurrency: the rows of a batch are locked (``select_for_update``, in pk
  order) inside one short transaction; missing rows are inserted first with
  ``ON CONFLICT DO NOTHING`` so two workers never race on a create.

Work is done per kind in bulk: a handful of queries per batch, not per change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from sync import bulk
from sync.addresses import (
    address_rows,
    apply_port_lists,
    decide,
    save,
    write_host_addresses,
)
from sync.changes import Change, Kind, Op, Source, parse_timestamp
from sync.choices import HostStatusChoices
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


_BOOKKEEPING = frozenset({"source_version", "field_versions", "last_synced_by", "last_event_at"})
# Changed on every row a sync touches; alone, they do not make a row "modified".
_SYNC_MARKS = frozenset({"last_synced_by"})


# What a late upsert may not change on a tombstone: it stays deleted, addressless.
# (A host's port list is kept on its tombstone: it still decides, in any
# order, whether a port left the host before the host died.)
_TOMBSTONE_FIXED = frozenset({"status", "addresses"})


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
        # Hosts: every complete port list seen (host pk, port ids, version),
        # and the hosts whose stored list or tombstone changed.
        self.port_lists: list[tuple[int, list[str], str]] = []
        self.membership_hosts: set[int] = set()
        self.version = ""  # of the change being applied
        self.refs: dict[str, dict[str, int]] = {}
        self.row_pks: list[int] = []

    # -- driver ------------------------------------------------------------
    def run(self) -> None:
        ids = list(dict.fromkeys(c.external_id for c in self.changes))
        # References first (placeholders inserted, hosts and bound ports
        # share-locked), then our rows: every apply locks in that order.
        self._resolve_refs()
        if self.kind == Kind.HOST_IP:
            self._lock_claimed(set(ids))
        rows = bulk.ensure_rows(self.provider, self.model, ids, lock=True)
        self.row_pks = [r.pk for r in rows.values()]
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
            name: bulk.ref_ids(self.provider, models_for[name], ids) for name, ids in wanted.items()
        }

    def _lock_claimed(self, ids: set[str]) -> None:
        """A port change decides its attachment from the claimed host's port
        list, and a floating IP from the port it binds to: neither may change
        under us (a concurrent host change would miss a port it does not yet
        see as claimed)."""
        bulk.share_lock(CloudHost, list(self.refs.get("host", {}).values()))
        parents = {p for c in self.changes if (p := _parent_port(c))} - ids
        if parents:
            qs = CloudPort.all_objects.filter(cloudprovider=self.provider, port_id__in=parents)
            bulk.share_lock(CloudPort, list(qs.values_list("pk", flat=True)))

    # -- one change --------------------------------------------------------
    def _apply_one(self, row: SyncedModel, change: Change) -> str:
        self.seen.add(row.pk)
        self.version = change.version
        if change.op == Op.DELETE:
            return self._delete(row, change)
        is_new = row.is_placeholder
        # A port hidden with its deleted host still takes news (a newer claim
        # may bring it back); only its own delete is a tombstone.
        tombstoned = row.deleted_at is not None and not getattr(row, "died_with_host", False)
        if self.kind == Kind.HOST and "port_ids" in change.fields:
            # Every complete list claims the ports it names, even an old one:
            # in order, it attached them at its version (sync.addresses).
            ports = sorted({str(p) for p in change.fields["port_ids"] or ()})
            self.port_lists.append((row.pk, ports, change.version))
        if (
            tombstoned
            and change.source == Source.FULL_SYNC
            and (
                change.version > row.source_version
                or (self.listed_at is not None and row.deleted_at < self.listed_at)
            )
        ):
            self._set(row, "deleted_at", None)  # a full sync found it alive again
            row.field_versions = {}
            if self.kind == Kind.HOST:
                self.membership_hosts.add(row.pk)  # ports hidden with it come back
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
            if attr == "port_ids":
                self.membership_hosts.add(row.pk)
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
        with_host = getattr(row, "died_with_host", False)
        if row.deleted_at is not None and not with_host:
            return Outcome.UNCHANGED
        if with_host:
            # Hidden with its host so far, now deleted for good: nothing
            # visible changes, so it is not counted as a deletion.
            self._set(row, "died_with_host", False)
            self._set(row, "addresses", [])
            return Outcome.UNCHANGED
        self._set(row, "deleted_at", self.now)
        if self.kind == Kind.HOST:
            self._set(row, "status", HostStatusChoices.DELETED)
            self.membership_hosts.add(row.pk)  # its ports die with it
            self.addresses[row.pk] = []
        if self.kind == Kind.HOST_IP:
            self._set(row, "addresses", [])
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
            if old != value:
                diff = self.result.diffs.setdefault(self.kind.value, {})
                diff.setdefault(row.external_id, {})[attr] = [_plain(old), _plain(value)]
        if attr == "addresses":
            self.addresses[row.pk] = value
            if self.kind == Kind.HOST:  # the host's port-less rows
                return
            value = [list(a) for a in value]  # a port keeps its set on the row
        setattr(row, attr, value)
        self.dirty[row.pk].add(attr)

    # -- field mapping -----------------------------------------------------
    def _values(self, change: Change) -> dict[str, Any]:
        """Change fields -> model attribute values (references resolved)."""
        values: dict[str, Any] = {}
        for name, value in change.fields.items():
            if name == "host" and self.kind == Kind.HOST_IP and _parent_port(change):
                continue  # a floating IP follows the host of its port (sync.addresses)
            if name in ("flavor", "image", "project", "host"):
                attr = {"flavor": "cloudflavor_id", "image": "image_id", "project": "project_id"}
                # a port's host is a claim; its attachment is decided on flush
                attr = attr.get(name, "claimed_host_id")
                values[attr] = self.refs[name][str(value)] if value else None
                if name == "image":
                    values["image_ref"] = str(value or "")
            elif name == "addresses":
                values["addresses"] = address_rows(value)
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
        if self.kind == Kind.HOST_IP:
            return [tuple(a) for a in row.addresses or ()]
        if row.is_placeholder:
            return []
        if not hasattr(self, "_loaded_addresses"):
            self._loaded_addresses = self._load_addresses()
        return self._loaded_addresses.get(row.pk, [])

    def _load_addresses(self) -> dict[int, list]:
        """The port-less address rows of this chunk's hosts."""
        loaded: dict[int, list] = defaultdict(list)
        qs = CloudHostIP.objects.filter(host_id__in=self.row_pks, port__isnull=True)
        for ip in qs.values_list("host_id", "address", "version", "kind", "mac"):
            loaded[ip[0]].append(tuple(ip[1:]))
        return {k: sorted(v) for k, v in loaded.items()}

    def _current_ports(self, row: SyncedModel) -> list[str]:
        """The ports attached to a host now (what a diff shows as the old value)."""
        if not hasattr(self, "_loaded_ports"):  # placeholders too: a port event may name them
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
        if attr == "port_ids":
            # The stored list (the register); a newer list naming the same
            # ports may still detach ports attached by older claims.
            newer = self.version > (row.field_versions or {}).get(attr, "")
            return row.port_ids != value or (newer and self._current_ports(row) != value)
        return self._current(row, attr) != value

    # -- write -------------------------------------------------------------
    def _flush(self, rows: dict[str, SyncedModel]) -> None:
        by_pk = {r.pk: r for r in rows.values()}
        plan = None
        if self.kind == Kind.HOST_IP:
            # Where each port is now: decided before writing, so each row is
            # written once with its new attachment.
            alive_changed = {
                pk for pk, attrs in self.dirty.items() if attrs & {"deleted_at", "died_with_host"}
            }
            plan = decide(
                self.provider,
                list(by_pk.values()),
                self.now,
                rewrite=self.addresses,
                moved=alive_changed,
            )
            for pk in plan.dirty & by_pk.keys():
                self.dirty[pk] |= {"host_id", "deleted_at", "died_with_host"}
        # Rows whose only change is who synced them last (a no-change full
        # sync: same versions, same values, same addresses) are not rewritten
        # field by field: one UPDATE per ref sets that and last_seen_at, and
        # their modified_at stays (nothing about the object changed).
        seen_only: dict[str, list[int]] = defaultdict(list)
        dirty_rows, fields = [], set()
        for pk, attrs in self.dirty.items():
            if attrs <= _SYNC_MARKS and pk not in self.addresses:
                seen_only[by_pk[pk].last_synced_by].append(pk)
            else:
                dirty_rows.append(by_pk[pk])
                fields |= attrs
        if dirty_rows:
            for row in dirty_rows:
                row.modified_at = self.now
                row.last_seen_at = self.now  # every dirty row was seen
            bulk.bulk_update(
                self.model, dirty_rows, [*sorted(fields), "modified_at", "last_seen_at"]
            )
        rest = self.seen.difference(row.pk for row in dirty_rows)
        qs = self.model.all_objects
        for ref, pks in seen_only.items():
            rest.difference_update(pks)
            qs.filter(pk__in=pks).update(last_seen_at=self.now, last_synced_by=ref)
        if rest:
            qs.filter(pk__in=rest).update(last_seen_at=self.now)
        if self.kind == Kind.HOST:
            if self.addresses:
                write_host_addresses(self.addresses)
            if self.port_lists or self.membership_hosts:
                apply_port_lists(self.provider, self.port_lists, self.membership_hosts, self.now)
        if plan is not None:
            save(plan, self.now, saved=by_pk)
