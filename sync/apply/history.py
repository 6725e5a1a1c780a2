"""Object history, written by ``apply()`` itself (``sync.models.HistoryEntry``).

Every change ``apply()`` makes that alters an inventory object (a synced
field, its tombstone, a port's attachment) becomes one entry: the fields
before → after, the time applied, and the cause. The entries of one
``apply()`` call are collected in memory (``HistoryLog``) and inserted with
one statement at its end, in its transaction: a change and its history
commit together, and a batch of 1,000 events costs one more statement (a
``COPY``), not 1,000. A change that alters nothing records nothing.

Why not django-reversion or django-simple-history: they hook ``save()`` /
model signals, which the bulk statements of ``sync.apply.bulk`` never fire,
and would write one row (or two) per object per statement even if they did.

The cause is what the caller says it is (``Cause``): ingest names each
change's inbox event, runs name themselves (full sync, catch-up, pushed
snapshot, a plan an operator applied). Without one, it is read from the
change's ``source``/``source_ref`` (the same identification
``last_synced_by`` shows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.apply import bulk
from sync.changes import Change, Kind, Source
from sync.choices import HistoryActionChoices as Action
from sync.choices import HistoryCauseChoices as CauseKind
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudProject,
    CloudProvider,
    HistoryEntry,
    SyncedModel,
)

__all__ = ["Cause", "CauseArg", "HistoryLog", "hidden_attrs", "plain"]


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a change was applied: an inbox event, or a sync run of a kind."""

    kind: str  # sync.choices.HistoryCauseChoices
    event_id: int | None = None
    event_type: str = ""
    occurred_at: datetime | None = None
    run_id: int | None = None
    actor: str = ""

    @classmethod
    def of_change(cls, change: Change) -> Cause:
        """What a change says of itself (``source``, ``source_ref``)."""
        if change.source == Source.EVENT:
            return cls(CauseKind.EVENT)
        ref = change.source_ref
        run_id = int(ref) if ref.isdigit() else None
        kind = CauseKind.CATCH_UP if change.source == Source.CATCH_UP else CauseKind.FULL
        return cls(kind, run_id=run_id)


# One cause for every change, or a cause per change, or None (read from each change).
CauseArg = Cause | Callable[[Change], Cause] | None

# Attributes that are registers or bookkeeping, not something an operator sees change.
_BOOKKEEPING = frozenset({"source_version", "field_versions", "last_synced_by", "last_event_at"})
_HIDDEN: dict[Kind, frozenset[str]] = {
    Kind.HOST: frozenset({"port_ids", "image_id"}),  # (the image is shown by its raw id)
    Kind.HOST_IP: frozenset({"claimed_host_id", "died_with_host"}),
}
# Stored references, shown by the external id of the row they name.
_REFERENCES: dict[Kind, dict[str, tuple[str, type[SyncedModel]]]] = {
    Kind.HOST: {"cloudflavor_id": ("flavor", CloudFlavor), "project_id": ("project", CloudProject)},
    Kind.HOST_IP: {"host_id": ("host", CloudHost)},
}
_RENAMED: dict[Kind, dict[str, str]] = {Kind.HOST: {"image_ref": "image"}}
assert set(_RENAMED) <= set(_REFERENCES)  # (write renames only kinds with references)


# Which action names an entry that absorbed another (a port created by its own
# change and attached by its host's list in the same event: created).
_RANK = {Action.UPDATED: 0, Action.RESTORED: 1, Action.DELETED: 2, Action.CREATED: 3}


def hidden_attrs(kind: Kind) -> frozenset[str]:
    """The attributes of ``kind`` that history does not record."""
    return _BOOKKEEPING | _HIDDEN.get(kind, frozenset())


def plain(value: Any) -> Any:
    """A JSON-safe rendering of a field value (history entries, dry-run diffs)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


class Entry:
    """One object's change, in the making: ``changes`` maps attribute ->
    [before, after] (model values; references as pks until written)."""

    __slots__ = ("action", "cause", "changes", "external_id", "kind", "pk")

    def __init__(self, kind: Kind, row: SyncedModel, action: str, cause: Cause) -> None:
        self.kind, self.pk, self.external_id = kind, row.id, row.external_id
        self.action, self.cause = action, cause
        self.changes: dict[str, list] = {}

    def note(self, attr: str, before: Any, after: Any) -> None:
        """``attr`` went from ``before`` to ``after`` (a later step of the
        same entry keeps the first ``before``; back to it, nothing changed)."""
        if attr in self.changes:
            first = self.changes[attr][0]
            if first == after:
                del self.changes[attr]
            else:
                self.changes[attr][1] = after
        elif before != after:
            self.changes[attr] = [before, after]


def _cause_values(c: Cause) -> dict[str, Any]:
    """An entry's cause columns."""
    return {
        "cause": c.kind,
        "event_id": c.event_id,
        "event_type": c.event_type[:255],
        "occurred_at": c.occurred_at,
        "run_id": c.run_id,
        "actor": c.actor[:100],
    }


class HistoryLog:
    """The history of one ``apply()`` call: entries collected by its chunk
    appliers, written with one statement by ``write`` (in apply's transaction)."""

    def __init__(self, provider: CloudProvider, now: datetime, cause: CauseArg) -> None:
        self.provider = provider
        self.now = now
        self._cause = cause
        self.entries: list[Entry] = []
        self._last: dict[tuple[Kind, int], Entry] = {}  # each object's latest entry
        # External ids of referenced rows apply resolved already (model -> pk -> id)
        self._names: dict[type[SyncedModel], dict[int, str]] = defaultdict(dict)

    def known(self, model: type[SyncedModel], ids: dict[str, int]) -> None:
        """``model`` rows apply resolved ({external id: pk}): an entry naming
        one needs no query to show its external id."""
        names = self._names[model]
        for external_id, pk in ids.items():
            names[pk] = external_id

    def cause_of(self, change: Change) -> Cause:
        if self._cause is None:
            return Cause.of_change(change)
        if isinstance(self._cause, Cause):
            return self._cause
        return self._cause(change)

    def add(self, kind: Kind, row: SyncedModel, action: str, cause: Cause) -> Entry:
        return self.keep(Entry(kind, row, action, cause))

    def keep(self, entry: Entry) -> Entry:
        """Record ``entry``; the object's latest entry absorbs it if both have
        the same cause (one event's host and port changes both attach a port:
        one entry). Returns the entry that holds the changes now."""
        key = (entry.kind, entry.pk)
        last = self._last.get(key)
        if last is not None and last.cause == entry.cause:
            for attr, (before, after) in entry.changes.items():
                last.note(attr, before, after)
            if _RANK[entry.action] > _RANK[last.action]:
                last.action = entry.action
            return last
        self.entries.append(entry)
        self._last[key] = entry
        return entry

    def note_settled(
        self,
        kind: Kind,
        row: SyncedModel,
        before: tuple[Any, Any],
        entry: Entry | None,
        cause: Cause,
    ) -> Entry:
        """A port whose attachment (``host_id``) or visibility (``deleted_at``)
        ``sync.apply.addresses`` decided: noted on ``entry`` (the port's own
        change in this apply) or on a new entry of ``cause``."""
        host_before, deleted_before = before
        if entry is None:
            if deleted_before is None and row.deleted_at is not None:
                action = Action.DELETED
            elif deleted_before is not None and row.deleted_at is None:
                action = Action.RESTORED
            elif host_before is None and row.host_id is not None and row.is_placeholder:
                # A port first known from a host's port list appears here: it
                # is created (its own first change, later, updates it), so
                # either order records one "created", first.
                action = Action.CREATED
            else:
                action = Action.UPDATED
            entry = self.add(kind, row, action, cause)
        entry.note("host_id", host_before, row.host_id)
        entry.note("deleted_at", deleted_before, row.deleted_at)
        return entry

    def write(self) -> int:
        """Insert the entries that changed something (one statement on
        Postgres); returns how many. Consumes the entries (their changes are
        renamed in place to the API's terms)."""
        entries = [e for e in self.entries if e.changes]
        if not entries:
            return 0
        names = self._reference_names(entries)
        causes = {e.cause for e in entries}
        one = causes.pop() if len(causes) == 1 else None  # (a run's: every entry's)
        same: dict[str, Any] = {"cloudprovider_id": self.provider.pk, "applied_at": self.now}
        columns = ["kind", "object_pk", "external_id", "action", "changes"]
        if one is not None:
            same.update(_cause_values(one))
        else:
            columns += list(_cause_values(Cause(CauseKind.EVENT)))
        rows = []
        for e in entries:
            # (values as they are: bulk.insert_rows renders them as ``plain`` does)
            changes = e.changes
            refs = _REFERENCES.get(e.kind)
            if refs is not None:
                for attr, (name, model) in refs.items():
                    pair = changes.pop(attr, None)
                    if pair is not None:
                        looked, (before, after) = names[model], pair
                        changes[name] = [looked.get(before) if before else None,
                                         looked.get(after) if after else None]
                for attr, name in _RENAMED.get(e.kind, {}).items():
                    if attr in changes:
                        changes[name] = changes.pop(attr)
            row = [e.kind.value, e.pk, e.external_id, e.action, changes]
            if one is None:
                row.extend(_cause_values(e.cause).values())
            rows.append(row)
        bulk.insert_rows(HistoryEntry, columns, rows, same)
        return len(rows)

    def _reference_names(self, entries: list[Entry]) -> dict[type[SyncedModel], dict[int, str]]:
        """External ids of the rows the entries' references name: those apply
        resolved are known, the rest are read (one query per referenced
        model, only if some reference names a row not known)."""
        out = self._names
        wanted: dict[type[SyncedModel], set[int]] = defaultdict(set)
        for e in entries:
            refs = _REFERENCES.get(e.kind)
            if refs is None:
                continue
            for attr, (_, model) in refs.items():
                pair = e.changes.get(attr)
                if pair is not None:
                    names = out[model]
                    for pk in pair:
                        if pk and pk not in names:
                            wanted[model].add(pk)
        for model, pks in wanted.items():
            if pks:
                out[model].update(
                    model.all_objects.filter(pk__any=list(pks)).values_list(
                        "pk", model.external_id_field
                    )
                )
        return out
