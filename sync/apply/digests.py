"""Listing digests: a re-sync skips the objects it already found as they are.

A full listing hands ``apply`` every object of the cloud, and on a night
when little changed almost every one of them is a no-op: same values, same
versions. Comparing them still meant loading and locking every row as a
model (its JSON columns parsed), which cost more than the listing itself.

When a full listing applies a change that leaves its row exactly as the
change says (every field it carries won, the row is live, no newer version
on the row), ``apply`` records, in the same transaction, the change's digest
(a hash of its fields, and of its version unless the listing's floor vouches
for that version, ``sync.apply.floors``) with the row's **physical version**
on Postgres (``xmin:ctid``: any later UPDATE of the row, by anyone, changes
it). The next listing reads, with one indexed query per chunk, the digests
whose row version still matches; a change with the same digest is a
no-op there and is counted unchanged without loading its row. Nothing has
to invalidate a digest: writing the row does.

The table is UNLOGGED (Postgres): a cache. Crash recovery empties it, and a
listing then compares every object once more, as before. Other databases
keep no digests (every change is compared). ``DIGEST_VERSION`` is part of
every digest: bump it when ``apply`` maps a change to a row differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connections

from sync import jsontext
from sync.apply.floors import Floors
from sync.changes import Change, Kind, Op, Source
from sync.models import ListingDigest, SyncedModel
from sync.models.lookups import TextArray

__all__ = ["DIGEST_VERSION", "digest_of", "enabled", "of_listing", "record", "unchanged"]

DIGEST_VERSION = 2  # 2: written by orjson (sync.jsontext)

# A row's physical version (any UPDATE gives the row a new xmin and ctid),
# hashed with its source_version and modified_at: a 32-bit xmin that wrapped
# around onto the same ctid, or a restored dump of the cache, does not match
# a row whose versions or values moved since.
_ROW_VERSION = (
    "md5(t.xmin::text || ':' || t.ctid::text || ':' || t.source_version || ':' "
    "|| coalesce(t.modified_at::text, ''))"
)


def enabled(model: type[SyncedModel], changes: Sequence[Change]) -> bool:
    """Digests apply to full listings' upserts, on Postgres, unless
    ``CLOUDSYNC_LISTING_DIGESTS`` is off."""
    return (
        settings.CLOUDSYNC_LISTING_DIGESTS
        and connections[model.all_objects.db].vendor == "postgresql"
        and any(c.source == Source.FULL_SYNC and c.op == Op.UPSERT for c in changes)
    )


def digest_of(change: Change, floors: Floors) -> str:
    """What a listing found of an object, as 32 hex digits. The version is
    left out where the listing's floor is that version (it vouches for every
    field of a row it saw): a listing stamps such kinds with its own start."""
    versioned = floors.versions.get(change.kind.value, "") != change.version
    text = jsontext.dumps(
        [DIGEST_VERSION, change.external_id, change.version if versioned else "", change.fields],
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def of_listing(changes: Sequence[Change], floors: Floors) -> list[str]:
    """Each change's digest, "" for what is not a listing's upsert, and for a
    host change carrying a port list: applying a list claims ports (other
    rows), an effect that depends on their registers, not on the host row's
    version, so it is always applied."""
    return [
        digest_of(c, floors)
        if c.source == Source.FULL_SYNC and c.op == Op.UPSERT
        and not (c.kind == Kind.HOST and "port_ids" in c.fields)
        else ""
        for c in changes
    ]


def unchanged(
    provider_id: int,
    kind: Kind,
    model: type[SyncedModel],
    changes: Sequence[Change],
    found: Sequence[str],
    floors: Floors,
) -> set[int]:
    """Indexes into ``changes`` (whose digests are ``found``, ``of_listing``)
    of the listing upserts whose live row is, by its recorded digest,
    exactly what the change says, and no newer than it (applying it would
    count it unchanged, not stale): nothing to apply."""
    wanted: dict[str, list[tuple[int, str]]] = {}
    for n, (change, digest) in enumerate(zip(changes, found, strict=True)):
        if digest:
            wanted.setdefault(change.external_id, []).append((n, digest))
    if not wanted:
        return set()
    connection = connections[model.all_objects.db]
    qn = connection.ops.quote_name
    table, idf = qn(model._meta.db_table), qn(model._meta.get_field(model.external_id_field).column)
    with connection.cursor() as cursor:
        # The digest as a correlated subquery: one probe of its primary key
        # per listed row, whatever the planner thinks of the tables' sizes.
        # (As a join, it hashed the whole digest table for every chunk once
        # the table grew faster than its statistics: 30 ms per 1,000 ports
        # at 100k.)
        cursor.execute(
            f"SELECT t.{idf}, (SELECT d.digest FROM {qn(ListingDigest._meta.db_table)} d "
            f"WHERE d.kind = %s AND d.row_id = t.id AND d.row_version = {_ROW_VERSION}), "
            f"t.source_version FROM {table} t "
            f"WHERE t.cloudprovider_id = %s AND t.{idf} = ANY(%s) AND t.deleted_at IS NULL",
            [kind.value, provider_id, TextArray(wanted)],
        )
        recorded = {external_id: (digest, version)
                    for external_id, digest, version in cursor if digest is not None}
    floor = floors.versions.get(kind.value, "")
    out: set[int] = set()
    for external_id, entries in wanted.items():
        if len(entries) != 1 or external_id not in recorded:
            continue  # (a listing that names an object twice applies both)
        (n, digest), (stored, source_version) = entries[0], recorded[external_id]
        version = changes[n].version
        if digest == stored and version >= source_version and version >= floor:
            out.add(n)
    return out


def record(kind: Kind, model: type[SyncedModel], vouched: Iterable[tuple[int, str]]) -> None:
    """After the rows are written (and while they are still locked): each
    (row pk, digest) with the row's current physical version."""
    pairs = dict(vouched)
    if not pairs:
        return
    connection = connections[model.all_objects.db]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(ListingDigest._meta.db_table)} (kind, row_id, row_version, digest) "
            f"SELECT %s, t.id, {_ROW_VERSION}, v.digest "
            f"FROM unnest(%s::bigint[], %s::text[]) AS v(id, digest) "
            f"JOIN {qn(model._meta.db_table)} t ON t.id = v.id "
            f"ON CONFLICT (kind, row_id) DO UPDATE "
            f"SET row_version = EXCLUDED.row_version, digest = EXCLUDED.digest",
            [kind.value, list(pairs), TextArray(pairs.values())],
        )
