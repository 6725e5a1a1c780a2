"""One chunk of changes of one kind, applied in bulk (``sync.apply``)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from enum import Enum
from typing import Any

from django.db import models

from sync.apply import bulk, digests
from sync.apply.addresses import (
    ChunkAddresses,
    Settlement,
    address_rows,
    apply_port_lists,
    decide,
    save,
    write_host_addresses,
)
from sync.apply.floors import NO_FLOORS, Floors
from sync.apply.history import Cause, Entry, HistoryLog, hidden_attrs
from sync.apply.history import plain as _plain
from sync.apply.references import references_of, resolve
from sync.apply.result import ApplyResult, Outcome
from sync.changes import Change, Kind, Op, Source, parse_timestamp
from sync.choices import HistoryActionChoices as Action
from sync.choices import HostStatusChoices
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudImage,
    CloudPort,
    CloudProject,
    CloudProvider,
    SyncedModel,
)

__all__ = ["KIND_ORDER", "MODEL_FOR_KIND", "SHARED_KINDS", "KindApplier", "insert_shared"]

MODEL_FOR_KIND: dict[Kind, type[SyncedModel]] = {
    Kind.PROJECT: CloudProject,
    Kind.FLAVOR: CloudFlavor,
    Kind.IMAGE: CloudImage,
    Kind.HOST: CloudHost,
    Kind.HOST_IP: CloudPort,
}
# Referenced kinds last. A referrer does not need their rows locked (a missing
# one gets a placeholder, inserted unlocked), and they are what concurrent
# batches share: every instance notification carries copies of its project and
# flavor. Locked last, just before the commit, those rows are held for a
# moment instead of for a whole apply (measured: half the time two workers'
# batches spent waiting on each other). The order is the same in every apply.
KIND_ORDER = (Kind.HOST, Kind.HOST_IP, Kind.PROJECT, Kind.FLAVOR, Kind.IMAGE)
SHARED_KINDS = (Kind.PROJECT, Kind.FLAVOR, Kind.IMAGE)


def insert_shared(
    provider: CloudProvider, by_kind: dict[Kind, list[Change]]
) -> dict[type[SyncedModel], dict[str, int]]:
    """Rows for the projects, flavors and images a batch names (its own
    changes of them and its hosts' references), placeholders inserted for the
    new ones before the batch locks anything (unlocked, in one order: by kind,
    then id). A row inserted only when its kind's turn comes, after the
    batch's hosts are locked, could wait on another batch that inserted the
    same row first (a host's reference) and now waits on one of those hosts:
    a deadlock. Inserted here, a wait (if any) comes while nothing is held,
    and the kind's turn only locks rows that exist. Returns their pks by
    model and external id (references resolve from them: no second read)."""
    wanted: dict[type[SyncedModel], set[str]] = defaultdict(set)
    for kind in SHARED_KINDS:
        wanted[MODEL_FOR_KIND[kind]].update(c.external_id for c in by_kind.get(kind, ()))
    shared = {MODEL_FOR_KIND[kind] for kind in SHARED_KINDS}
    for kind, changes in by_kind.items():
        refs = [ref for ref in references_of(kind).values() if ref.model in shared]
        for change in changes if refs else ():
            if change.op == Op.UPSERT:
                for ref in refs:
                    if value := change.fields.get(ref.field):
                        wanted[ref.model].add(str(value))
    return {
        MODEL_FOR_KIND[kind]: bulk.ref_ids(provider, MODEL_FOR_KIND[kind], ids)
        for kind in SHARED_KINDS
        if (ids := wanted[MODEL_FOR_KIND[kind]])
    }

_BOOKKEEPING = frozenset({"source_version", "field_versions", "last_synced_by", "last_event_at"})
# Changed on every row a sync touches; alone, they do not make a row "modified".
_SYNC_MARKS = frozenset({"last_synced_by"})


# What a late upsert may not change on a tombstone: it stays deleted, addressless.
# (A host's port list is kept on its tombstone: it still decides, in any
# order, whether a port left the host before the host died.)
_TOMBSTONE_FIXED = frozenset({"status", "addresses"})
# Attributes whose current value is not the row's attribute (``_current``).
_DERIVED = frozenset({"addresses", "port_ids"})
# The registers that decide where a port is attached and whether it shows.
_DECIDING = frozenset(
    {"claimed_host_id", "parent_port_id", "port_ids", "deleted_at", "died_with_host"}
)


def _parent_port(change: Change) -> str:
    """The port a floating IP is bound to ("" for a port's own id or none)."""
    value = str(change.fields.get("port_id") or "")
    return "" if value == change.external_id else value


class KindApplier:
    """Applies one chunk of changes of one kind."""

    def __init__(
        self,
        provider: CloudProvider,
        kind: Kind,
        changes: list[Change],
        now: datetime,
        result: ApplyResult,
        listed_at: datetime | None = None,
        floors: Floors = NO_FLOORS,
        history: HistoryLog | None = None,
        known: dict[type[SyncedModel], dict[str, int]] | None = None,
        build_new: bool = False,
    ) -> None:
        self.provider = provider
        # With ``build_new``, rows new to the database are built in memory and
        # inserted once, with their final values, at the flush (pks here);
        # otherwise inserted as placeholders first, then updated.
        self.built: set[int] | None = set() if build_new else None
        self.known = known or {}
        self.listed_at = listed_at
        self.floors = floors
        self.floor = ""  # of the row being changed
        self.kind = kind
        self.model = MODEL_FOR_KIND[kind]
        self.changes = changes
        self.now = now
        self.result = result
        self.dirty: dict[int, set[str]] = defaultdict(set)
        self.ips = ChunkAddresses(ports=kind == Kind.HOST_IP)
        # Hosts: every complete port list seen (host pk, port ids, version),
        # and the hosts whose stored list or tombstone changed.
        self.port_lists: list[tuple[int, list[str], str]] = []
        self.membership_hosts: set[int] = set()
        self.version = ""  # of the change being applied
        self.references = references_of(kind)
        self.refs: dict[str, dict[str, int]] = {}  # change field -> {external id: pk}
        # Listing upserts that left their row exactly as they say (row pk ->
        # digest, ``sync.apply.digests``); None where digests are not kept.
        self.vouched: dict[int, str] | None = None
        self.digests: dict[int, str] = {}  # id(change) -> its digest
        self.applied: dict[int, int] = defaultdict(int)  # row pk -> changes applied to it
        # History (sync.apply.history): the entry of the change being applied,
        # each row's last entry and the cause of the last change applied to it.
        self.history = history
        self.hidden = hidden_attrs(kind)
        self.entry: Entry | None = None
        self.entries: dict[int, Entry] = {}
        self.causes: dict[int, Cause] = {}
        # The cause of the change that last altered the registers deciding a
        # row's attachment (a port's claim, tombstone; a host's port list,
        # tombstone): what a settled move is credited to (not the row's last
        # change, which may be about something else).
        self.deciders: dict[int, Cause] = {}
        self.restored = False

    # -- driver ------------------------------------------------------------
    def run(self) -> None:
        if digests.enabled(self.model, self.changes):
            self.vouched = {}
            found = digests.of_listing(self.changes, self.floors)
            skip = digests.unchanged(
                self.provider.pk, self.kind, self.model, self.changes, found, self.floors
            )
            for n in sorted(skip):
                self.result.add(self.changes[n], Outcome.UNCHANGED)
            kept = [
                (c, d)
                for n, (c, d) in enumerate(zip(self.changes, found, strict=True))
                if n not in skip
            ]
            self.changes = [c for c, _ in kept]
            self.digests = {id(c): d for c, d in kept}
            if not self.changes:
                return
        ids = list(dict.fromkeys(c.external_id for c in self.changes))
        # References first (placeholders inserted, hosts and bound ports
        # share-locked), then our rows; kinds in KIND_ORDER, the shared ones'
        # new rows inserted before anything (insert_shared).
        self.refs = resolve(self.provider, self.references, self.changes, self.known)
        if self.history is not None:
            for name, pks in self.refs.items():
                self.history.known(self.references[name].model, pks)
        if self.kind == Kind.HOST_IP:
            self._lock_claimed(set(ids))
        rows = bulk.ensure_rows(self.provider, self.model, ids, lock=True, built=self.built)
        self.ips.row_pks = [r.id for r in rows.values()]
        history = self.history
        if history is not None:  # (a port's entry names its host by the host's id)
            history.known(self.model, {external_id: r.id for external_id, r in rows.items()})
        for change in self.changes:
            row = rows[change.external_id]
            self.applied[row.id] += 1
            if history is None:
                self.result.add(change, self._apply_one(row, change))
                continue
            cause = self.causes[row.id] = history.cause_of(change)
            self.entry, self.restored = Entry(self.kind, row, "", cause), False
            # (a placeholder port a host's list attached: shown already)
            shown = self.kind == Kind.HOST_IP and row.host_id is not None
            outcome = self._apply_one(row, change)
            self.result.add(change, outcome)
            if self.entry.changes:
                self.entry.action = self._action(outcome, shown)
                self.entries[row.id] = history.keep(self.entry)
            self.entry = None
        self._flush(rows)
        if self.vouched:
            digests.record(
                self.kind,
                self.model,
                [(pk, digest) for pk, digest in self.vouched.items() if self.applied[pk] == 1],
            )

    def _action(self, outcome: str, shown: bool = False) -> str:
        if self.restored:
            return Action.RESTORED
        if outcome == Outcome.CREATED:
            # A placeholder port a host's list already attached was recorded
            # "created" then (HistoryLog.note_settled): its own first change
            # updates it.
            return Action.UPDATED if shown else Action.CREATED
        if outcome == Outcome.DELETED:
            return Action.DELETED
        return Action.UPDATED

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
        self.version = change.version
        if change.op == Op.DELETE:
            return self._delete(row, change)
        is_new = row.is_placeholder
        # A port hidden with its deleted host still takes news (a newer claim
        # may bring it back); only its own delete is a tombstone.
        tombstoned = row.deleted_at is not None and not getattr(row, "died_with_host", False)
        if self.kind == Kind.HOST and "port_ids" in change.fields:
            # Every complete list claims the ports it names, even an old one:
            # in order, it attached them at its version (sync.apply.addresses).
            ports = sorted({str(p) for p in change.fields["port_ids"] or ()})
            self.port_lists.append((row.id, ports, change.version))
        if (
            tombstoned
            and change.source == Source.FULL_SYNC
            and (
                change.version > row.source_version
                or (self.listed_at is not None and row.deleted_at < self.listed_at)
            )
        ):
            self._set(row, "deleted_at", None)  # a full sync found it alive again
            self.restored = True
            row.field_versions = {}
            if self.kind == Kind.HOST:
                self.membership_hosts.add(row.id)  # ports hidden with it come back
            is_new, tombstoned = True, False
        previous = row.source_version
        versions = dict(row.field_versions or {})
        # Every field is at least as new as the last complete listing that
        # saw the row (sync.apply.floors); that listing did not rewrite it.
        self.floor = floor = "" if is_new else self.floors.of(self.kind, row)
        changed = won = lost = False
        for attr, value in self._values(change).items():
            stored = versions.get(attr, "")
            # (a field nothing ever set has nothing for a listing to vouch for)
            effective = max(stored, floor) if stored else ""
            if change.version < effective:
                lost = True
                continue  # a newer change (or listing) already set this field
            if tombstoned and attr in _TOMBSTONE_FIXED:
                continue
            won = True
            if attr == "port_ids":
                self.membership_hosts.add(row.id)
            differs = self._differs(row, attr, value)
            if differs:
                self._set(row, attr, value)
                changed = True
            # A listing finding a value unchanged records nothing: its floor
            # already vouches for it.
            if change.version > effective or (differs and change.version > stored):
                versions[attr] = change.version
        if versions != row.field_versions:
            self._set(row, "field_versions", versions)
        if change.version > max(previous, floor) or (changed and change.version > previous):
            self._set(row, "source_version", change.version)
        if tombstoned:
            # Late news about a deleted object: kept on the tombstone (so
            # every order converges) but it stays deleted.
            return Outcome.STALE
        if won or is_new:
            self._touch(row, change)
        if is_new:
            outcome = Outcome.CREATED
        elif changed:
            outcome = Outcome.UPDATED
        elif change.version >= max(previous, floor):
            outcome = Outcome.UNCHANGED
        else:
            return Outcome.STALE
        if (
            self.vouched is not None
            and not lost
            and change.source == Source.FULL_SYNC
            and row.source_version <= max(change.version, floor)
            and self.applied[row.id] == 1  # (another change to it may follow)
        ):
            # The row is now exactly what the listing says: the next listing
            # saying the same need not load it (sync.apply.digests).
            if digest := self.digests.get(id(change)):
                self.vouched[row.id] = digest
        return outcome

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
            self.membership_hosts.add(row.id)  # its ports die with it
            self.ips.new[row.id] = []
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
        entry = self.entry
        if entry is not None and attr in _DECIDING:
            self.deciders[row.id] = entry.cause
        if self.result.diffs is not None and attr not in _BOOKKEEPING:
            old = self._current(row, attr)
            if old != value:
                diff = self.result.diffs.setdefault(self.kind.value, {})
                diff.setdefault(row.external_id, {})[attr] = [_plain(old), _plain(value)]
        if entry is not None and attr not in self.hidden:
            before = self._current(row, attr) if attr in _DERIVED else getattr(row, attr)
            if attr in entry.changes:
                entry.note(attr, before, value)
            elif before != value:  # (Entry.note's first step, inline: once per field set)
                entry.changes[attr] = [before, value]
        if attr == "addresses":
            self.ips.new[row.id] = value
            if self.kind == Kind.HOST:  # the host's port-less rows
                return
            value = [list(a) for a in value]  # a port keeps its set on the row
        setattr(row, attr, value)
        self.dirty[row.id].add(attr)

    # -- field mapping -----------------------------------------------------
    def _values(self, change: Change) -> dict[str, Any]:
        """Change fields -> model attribute values (references resolved)."""
        values: dict[str, Any] = {}
        for name, value in change.fields.items():
            if name == "host" and self.kind == Kind.HOST_IP and _parent_port(change):
                continue  # a floating IP follows the host of its port (sync.apply.addresses)
            if name in self.references:
                values.update(self.references[name].values(value, self.refs.get(name, {})))
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
            elif type(value) is not str and name in _text_fields(self.model):
                # (None is blank; anything else as its JSON text, whatever
                # writes the row: a COPY would render it its own way)
                values[name] = "" if value is None else _as_text(value)
            else:
                values[name] = value
        return values

    def _current(self, row: SyncedModel, attr: str) -> Any:
        if attr == "addresses":
            return self.ips.current(row)
        if attr == "port_ids":
            return self.ips.attached_ports(row)
        return getattr(row, attr)

    def _differs(self, row: SyncedModel, attr: str, value: Any) -> bool:
        if attr == "port_ids":
            # The stored list (the register); a newer list naming the same
            # ports may still detach ports attached by older claims.
            stored = (row.field_versions or {}).get(attr, "")
            newer = self.version > (max(stored, self.floor) if stored else "")
            return row.port_ids != value or (newer and self.ips.attached_ports(row) != value)
        return self._current(row, attr) != value

    # -- write -------------------------------------------------------------
    def _flush(self, rows: dict[str, SyncedModel]) -> None:
        by_pk = {r.id: r for r in rows.values()}
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
                rewrite=self.ips.new,
                moved=alive_changed,
                floors=self.floors,
            )
            for pk in plan.dirty & by_pk.keys():
                self.dirty[pk] |= {"host_id", "deleted_at", "died_with_host"}
            self._settled_history(plan, by_pk)
        # Rows whose only change would be who synced them last (a no-change
        # full sync: same versions, same values, same addresses) are not
        # written at all: a re-sync that changes nothing writes nothing. What
        # deletions need of the listing (the ids it listed) stays in memory
        # (sync.reconcile), and a later complete listing supersedes stored
        # plans (sync.runs). A catch-up (a few objects) still marks what it
        # saw: a stored plan must not delete an object a catch-up listed after
        # it, whatever the cloud's clock says of its version.
        built = self.built or set()
        dirty_rows, fields, seen = [], set(), set()
        for pk, attrs in self.dirty.items():
            if attrs <= _SYNC_MARKS and pk not in self.ips.new:
                continue
            row = by_pk[pk]
            if self.dirty[row.id] - _BOOKKEEPING or row.id in self.ips.new:
                row.modified_at = self.now  # something about the object changed
            row.last_seen_at = self.now
            seen.add(pk)
            if pk not in built:
                dirty_rows.append(row)
                fields |= attrs
        catch_up = any(c.source == Source.CATCH_UP for c in self.changes)
        if built:
            # New rows: one COPY of what the chunk made of them (every
            # row it built, written or not: a placeholder existed before too).
            new_rows = [by_pk[pk] for pk in built]
            if catch_up:
                for row in new_rows:
                    row.last_seen_at = self.now
            bulk.insert_built(self.model, new_rows)
        if dirty_rows:
            bulk.bulk_update(
                self.model, dirty_rows, [*sorted(fields), "modified_at", "last_seen_at"]
            )
        if catch_up:
            seen_only = set(by_pk).difference(seen, built)
            self.model.all_objects.filter(pk__any=list(seen_only)).update(last_seen_at=self.now)
        if self.kind == Kind.HOST:
            if self.ips.new:
                write_host_addresses(self.ips.new)
            if self.port_lists or self.membership_hosts:
                settled = apply_port_lists(
                    self.provider, self.port_lists, self.membership_hosts, self.now, self.floors
                )
                if settled is not None:
                    self._settled_history(settled, {})
        if plan is not None:
            save(plan, self.now, saved=by_pk)

    # -- history of port attachments (sync.apply.addresses) ------------------
    def _decider(self, pk: int | None) -> Cause | None:
        if pk is None:
            return None
        return self.deciders.get(pk) or self.causes.get(pk)

    def _settled_history(self, plan: Settlement, own: dict[int, SyncedModel]) -> None:
        """Ports whose attachment or visibility ``decide`` changed: changes of
        the port, caused by the change that moved them (the port's own, its
        floating IP's port's, or the host's whose list or tombstone did)."""
        history = self.history
        if history is None or not plan.before:
            return
        fallback = next(reversed(self.causes.values()), None)
        by_port_id = {row.external_id: self._decider(pk) for pk, row in own.items()}
        for pk in sorted(plan.before):
            row = plan.rows[pk]
            if pk in own:
                cause = self._decider(pk)
            elif row.parent_port_id and row.parent_port_id in by_port_id:
                cause = by_port_id[row.parent_port_id]
            elif self.kind == Kind.HOST:  # (causes are by host pk here)
                host_before = plan.before[pk][0]
                # (the host it is attached to now, or the one it left, whose
                # list or tombstone moved it)
                cause = (
                    self._decider(row.host_id)
                    or self._decider(host_before)
                    or self._decider(row.claimed_host_id)
                )
            else:
                cause = None
            cause = cause or fallback
            if cause is None:
                continue
            entry = self.entries.get(pk) if pk in own else None
            if entry is not None and entry.cause != cause:
                entry = None  # (the move has its own entry, of the change that decided it)
            entry = history.note_settled(Kind.HOST_IP, row, plan.before[pk], entry, cause)
            if pk in own:
                self.entries[pk] = entry


_TEXT_FIELDS: dict[type[SyncedModel], frozenset[str]] = {}


def _text_fields(model: type[SyncedModel]) -> frozenset[str]:
    """The attributes of ``model`` stored as text."""
    names = _TEXT_FIELDS.get(model)
    if names is None:
        names = _TEXT_FIELDS[model] = frozenset(
            f.attname for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField))
    return names


def _as_text(value: Any) -> str:
    """A value a driver gave a text field that is not text: its JSON text
    (``true``, ``["a", "b"]``; an enum's value), as the rows' JSON
    statements stored it before."""
    if isinstance(value, Enum):
        value = value.value
        if isinstance(value, str):
            return value
    return json.dumps(value, default=str, ensure_ascii=False)
