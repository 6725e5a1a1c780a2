"""IP addresses and the ports that carry them, for ``sync.apply``.

A ``CloudPort`` is a network attachment (Neutron port, AWS ENI, floating IP
``fip:<id>`` bound to a port); ``CloudHostIP`` rows are its addresses, or a
host's own port-less addresses.

Which host a port is on is decided from last-writer-wins registers only, so
every order and duplication of the same changes ends in the same rows:

* a **claim**: the newest statement naming the port's host. A port's own
  change (``host``: a Neutron port event, Nova's per-port change, an AWS ENI)
  and a host's complete port list (``port_ids``) naming the port both claim
  it; the newest wins (``CloudPort.claimed_host``, its version in
  ``field_versions["claimed_host_id"]``). A list claims even when it is older
  than the host's stored list: in order it would have attached the port then;
* the claimed host's **newest complete list**: when it is newer than the claim
  and does not name the port, the port left that host (unattached);
* a port attached to a **deleted host** is hidden with it (``died_with_host``,
  its addresses kept on the row) until a newer claim names a live host; its
  own delete is terminal (DESIGN §5);
* a **floating IP** follows the port it is bound to (``parent_port_id``), and
  is unattached while that port is gone.

``decide`` (then ``save``) recomputes that for ports whose registers changed (and for the
ports claimed by hosts whose list or tombstone changed), then brings their
``CloudHostIP`` rows in line with ``CloudPort.addresses``.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Q
from django.db.models.fields.json import KT

from sync.apply import bulk
from sync.apply.floors import NO_FLOORS, Floors
from sync.changes import Kind
from sync.choices import HostIPKindChoices
from sync.models import CloudHost, CloudHostIP, CloudPort, CloudProvider, SyncedModel

__all__ = [
    "CLAIM",
    "ChunkAddresses",
    "HostList",
    "Settlement",
    "address_rows",
    "apply_port_lists",
    "attached_host",
    "claim_version",
    "decide",
    "host_lists",
    "save",
    "write_host_addresses",
]

CLAIM = "claimed_host_id"  # field_versions key of a port's claim register
_IP_KINDS = frozenset(HostIPKindChoices.values)  # (``.values`` builds a list per call)
_SETTLED = ["claimed_host", "field_versions", "host", "deleted_at", "died_with_host", "modified_at"]


def address_rows(addresses: Any) -> list[tuple[str, int, str, str]]:
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
        if kind not in _IP_KINDS:
            kind = HostIPKindChoices.FIXED
        out.add((str(ip), ip.version, kind, str(item.get("mac") or "").lower()))
    return sorted(out)


class HostList(NamedTuple):
    """What membership needs of a host: its newest complete port list, that
    list's version ("" if never listed; at least the listing floor of a host
    a complete listing saw, ``sync.apply.floors``), and whether the host is
    deleted."""

    port_ids: frozenset[str]
    version: str
    deleted: bool


class _Seen(NamedTuple):
    """What ``Floors.of`` reads of a row."""

    external_id: str
    created_at: datetime
    deleted_at: datetime | None


def host_lists(pks: Iterable[int], floors: Floors = NO_FLOORS) -> dict[int, HostList]:
    # (only the list's version of field_versions: not every host's whole JSON)
    rows = CloudHost.all_objects.filter(pk__any=list(pks)).values_list(
        "pk", "port_ids", KT("field_versions__port_ids"), "host_id", "created_at", "deleted_at"
    )
    return {
        pk: HostList(
            frozenset(ids or ()),
            _with_floor(version or "", floors.of(Kind.HOST, _Seen(*seen))),
            seen[2] is not None,
        )
        for pk, ids, version, *seen in rows
    }


def _with_floor(version: str, floor: str) -> str:
    """A register's version counted from a listing floor; a register nothing
    ever set (an AWS host sends no port list) has nothing to vouch for."""
    return max(version, floor) if version else ""


def claim_version(port: CloudPort, floors: Floors = NO_FLOORS) -> str:
    """The version of a port's claim register (at least its listing floor)."""
    return _with_floor((port.field_versions or {}).get(CLAIM, ""), floors.of(Kind.HOST_IP, port))


def attached_host(
    port: CloudPort, hosts: dict[int, HostList], floors: Floors = NO_FLOORS
) -> int | None:
    """The host a (non-floating) port is on: its claim, unless the claimed
    host's newest complete port list is newer than the claim and leaves the
    port out."""
    host_pk = port.claimed_host_id
    host = hosts.get(host_pk) if host_pk is not None else None
    if host is None:
        return host_pk
    if host.version > claim_version(port, floors) and port.port_id not in host.port_ids:
        return None
    return host_pk


def apply_port_lists(
    provider: CloudProvider,
    lists: list[tuple[int, list[str], str]],
    hosts: set[int],
    now: datetime,
    floors: Floors = NO_FLOORS,
) -> Settlement | None:
    """Host side, after the hosts were written (and are locked): each complete
    list ``(host pk, port ids, version)`` claims the ports it names (unknown
    ones become placeholders), then the ports claimed by ``hosts`` (whose list
    or tombstone changed) and the newly claimed ones are settled. Returns
    what was settled (None if nothing was looked at)."""
    listed = {port_id for _, ids, _ in lists for port_id in ids}
    pks = list(bulk.ref_ids(provider, CloudPort, listed).values()) if listed else []
    if not pks and not hosts:
        return None
    # (No provider condition: the pks are this provider's, and so are the
    # hosts that claim; with it, a planner whose statistics lag a fast-growing
    # table reads every port of the provider instead of the two indexes.)
    qs = CloudPort.all_objects.filter(Q(pk__any=pks) | Q(claimed_host_id__any=list(hosts)))
    rows = [row for row in bulk.load_rows(bulk.locked(qs)) if row.cloudprovider_id == provider.pk]
    by_id = {row.port_id: row for row in rows}
    claimed: set[int] = set()
    for host_pk, ids, version in lists:
        for port_id in ids:
            row = by_id[port_id]
            current = claim_version(row, floors)
            if version < current:
                continue  # a newer statement about this port already spoke
            if row.claimed_host_id != host_pk or version > current:
                row.claimed_host_id = host_pk
                row.field_versions = {**(row.field_versions or {}), CLAIM: version}
                claimed.add(row.id)
    plan = decide(provider, rows, now, dirty=claimed, floors=floors)
    save(plan, now)
    return plan


@dataclass
class Settlement:
    """What ``decide`` found: every row it looked at (the given ones and the
    floating IPs bound to ports that moved, all locked), the rows whose
    ``host``/``deleted_at`` (or claim) changed in memory, and the rows whose
    address rows must be rebuilt; ``before``: (host pk, deleted_at) of the
    rows whose attachment or visibility it changed, as they were (history)."""

    rows: dict[int, CloudPort] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    rewrite: set[int] = field(default_factory=set)
    before: dict[int, tuple[int | None, datetime | None]] = field(default_factory=dict)


def decide(
    provider: CloudProvider,
    rows: list[CloudPort],
    now: datetime,
    *,
    dirty: Iterable[int] = (),
    rewrite: Iterable[int] = (),
    moved: Iterable[int] = (),
    floors: Floors = NO_FLOORS,
) -> Settlement:
    """Recompute, in memory, ``host``/``deleted_at`` of these locked port rows
    (see the module doc) and of the floating IPs bound to ports that moved.
    ``dirty``: rows whose claim the caller changed; ``rewrite``: rows whose
    ``addresses`` changed; ``moved``: rows the caller deleted or brought back
    (their floating IPs must follow); ``floors``: the listing floors the
    registers count from (``sync.apply.floors``)."""
    plan = Settlement({row.id: row for row in rows}, set(dirty), set(rewrite) | set(moved))
    ports = [row for row in rows if not row.parent_port_id]
    host_pks = {row.claimed_host_id for row in ports if row.claimed_host_id is not None}
    hosts = host_lists(host_pks, floors) if host_pks else {}
    moved_set = set(moved)
    moved_ids = {row.port_id for row in rows if row.id in moved_set}
    for row in ports:
        host_pk = attached_host(row, hosts, floors)
        own_tombstone = row.deleted_at is not None and not row.died_with_host
        dies = not own_tombstone and host_pk in hosts and hosts[host_pk].deleted

        if own_tombstone or (dies and row.deleted_at is not None):
            deleted_at = row.deleted_at
        else:
            deleted_at = now if dies else None
        state = (host_pk, deleted_at, dies)
        if state != (row.host_id, row.deleted_at, row.died_with_host):
            if (deleted_at is None) != (row.deleted_at is None):
                plan.rewrite.add(row.id)  # shown again, or hidden with its host
            moved_ids.add(row.port_id)
            plan.before.setdefault(row.id, (row.host_id, row.deleted_at))
            row.host_id, row.deleted_at, row.died_with_host = state
            plan.dirty.add(row.id)
    fips = {row.id: row for row in rows if row.parent_port_id}
    if moved_ids:
        bound = CloudPort.all_objects.filter(cloudprovider=provider, parent_port_id__any=list(moved_ids))
        fips.update({f.id: f for f in bulk.load_rows(
            bulk.locked(bound.exclude(pk__any=list(plan.rows))))})
    if fips:
        _follow_parents(provider, fips, {row.port_id: row for row in ports}, plan)
        plan.rows.update(fips)
    return plan


def save(plan: Settlement, now: datetime, *, saved: Iterable[int] = ()) -> None:
    """Write what ``decide`` changed (except the rows in ``saved``, which the
    caller writes itself) and bring the address rows in line."""
    saved = set(saved)
    changed = [plan.rows[pk] for pk in sorted(plan.dirty)]
    unsaved = [row for row in changed if row.id not in saved]
    for row in unsaved:
        row.modified_at = now
    if unsaved:
        bulk.bulk_update(CloudPort, unsaved, _SETTLED)
    _rewrite_ips([plan.rows[pk] for pk in sorted(plan.rewrite)])
    _retarget_ips([row for row in changed if row.id not in plan.rewrite])


def _follow_parents(
    provider: CloudProvider,
    fips: dict[int, CloudPort],
    parents: dict[str, CloudPort],
    plan: Settlement,
) -> None:
    """A floating IP is on the host of the live port it is bound to; it never
    dies with a host (only its own delete removes it)."""
    missing = {f.parent_port_id for f in fips.values()} - parents.keys()
    if missing:
        qs = CloudPort.all_objects.filter(cloudprovider=provider, port_id__any=list(missing))
        parents = {**parents, **{p.port_id: p for p in qs.only("port_id", "host", "deleted_at")}}
    for fip in fips.values():
        parent = parents.get(fip.parent_port_id)
        host_pk = parent.host_id if parent is not None and parent.deleted_at is None else None
        deleted_at = None if fip.died_with_host else fip.deleted_at
        if (fip.host_id, fip.deleted_at, fip.died_with_host) != (host_pk, deleted_at, False):
            if deleted_at != fip.deleted_at:
                plan.rewrite.add(fip.id)
            plan.before.setdefault(fip.id, (fip.host_id, fip.deleted_at))
            fip.host_id, fip.deleted_at, fip.died_with_host = host_pk, deleted_at, False
            plan.dirty.add(fip.id)


def _rewrite_ips(rows: list[CloudPort]) -> None:
    """Replace the address rows of ports from their ``addresses`` (none while
    the port is deleted)."""
    if not rows:
        return
    CloudHostIP.objects.filter(port_id__any=[row.id for row in rows]).delete()
    bulk.insert_rows(  # (lists: a model instance per address cost more than the INSERT)
        CloudHostIP,
        ["port_id", "host_id", "address", "version", "kind", "mac"],
        [
            [row.id, row.host_id, a, v, k, m]
            for row in rows
            if row.deleted_at is None
            for a, v, k, m in row.addresses or ()
        ]
    )


def _retarget_ips(rows: list[CloudPort]) -> None:
    """Point the existing address rows of these ports at their port's host."""
    if not rows:
        return
    target = {row.id: (row.host_id if row.deleted_at is None else None) for row in rows}
    connection = connections[CloudHostIP.objects.db]
    if connection.vendor != "postgresql":
        for port_pk, host_pk in target.items():
            CloudHostIP.objects.filter(port_id=port_pk).update(host_id=host_pk)
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(CloudHostIP._meta.db_table)} AS i SET host_id = v.h "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(p, h) "
            "WHERE i.port_id = v.p AND i.host_id IS DISTINCT FROM v.h",
            [list(target), list(target.values())],
        )


def write_host_addresses(addresses: dict[int, list]) -> None:
    """Replace the port-less address rows of hosts (e.g. legacy Nova ``fixed_ips``)."""
    pks = list(addresses)
    CloudHostIP.objects.filter(host_id__any=list(pks), port__isnull=True).delete()
    bulk.insert_rows(
        CloudHostIP,
        ["host_id", "address", "version", "kind", "mac"],
        [[pk, a, v, k, m] for pk, addrs in addresses.items() for a, v, k, m in addrs],
    )


class ChunkAddresses:
    """The address sets of one chunk of rows (hosts, or ports if ``ports``):
    the new ones set by the chunk (``new``, row pk -> address rows) and the
    current ones, what a diff shows as the old value. A host's stored
    port-less addresses and attached ports are read once, when first asked."""

    def __init__(self, *, ports: bool) -> None:
        self.ports = ports
        self.new: dict[int, list] = {}
        self.row_pks: list[int] = []  # the chunk's rows, set once they exist
        self._stored: dict[int, list] | None = None
        self._attached: dict[int, list[str]] | None = None

    def current(self, row: SyncedModel) -> list:
        if row.id in self.new:
            return self.new[row.id]
        if self.ports:
            return [tuple(a) for a in row.addresses or ()]
        if row.is_placeholder:
            return []
        if self._stored is None:
            self._stored = self._load_addresses()
        return self._stored.get(row.id, [])

    def attached_ports(self, row: SyncedModel) -> list[str]:
        """The ports attached to a host now."""
        if self._attached is None:  # placeholders too: a port event may name them
            loaded: dict[int, list[str]] = defaultdict(list)
            ports = CloudPort.objects.filter(host_id__any=list(self.row_pks), parent_port_id="")
            for host_id, port_id in ports.values_list("host_id", "port_id"):
                loaded[host_id].append(port_id)
            self._attached = {k: sorted(v) for k, v in loaded.items()}
        return self._attached.get(row.id, [])

    def _load_addresses(self) -> dict[int, list]:
        """The port-less address rows of the chunk's hosts."""
        loaded: dict[int, list] = defaultdict(list)
        qs = CloudHostIP.objects.filter(host_id__any=list(self.row_pks), port__isnull=True)
        for ip in qs.values_list("host_id", *CloudHostIP.address_fields):
            loaded[ip[0]].append(tuple(ip[1:]))
        return {k: sorted(v) for k, v in loaded.items()}
