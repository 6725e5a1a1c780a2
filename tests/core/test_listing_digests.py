"""Listing digests (``sync.apply.digests``): a listing skips the objects it
finds exactly as the last listing that vouched for them left them, and the
inventory ends exactly as if it had compared every one.

The differential property runs the same random history twice, digests on
and off, and compares every stored register; the others pin what a skip
must never hide (a row written since, a lost cache, a new digest format)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sync.apply import Floors, apply, digests
from sync.apply.floors import NO_FLOORS
from sync.changes import Change, Kind, Op, Source, make_version
from sync.models import CloudHost, CloudPort, CloudProvider, ListingDigest

pytestmark = pytest.mark.django_db

HOSTS = ["vm-a", "vm-a", "vm-b"]
PORTS = ["p1", "p2"]
VALUES = {"hostname": ["web", "db"], "status": ["active", "stopped"]}
PORT_LISTS = [[], ["p1"], ["p1", "p2"], ["p2"]]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("host"), st.sampled_from(HOSTS), st.sampled_from(sorted(VALUES)),
                  st.integers(0, 1)),
        st.tuples(st.just("ports"), st.sampled_from(HOSTS), st.integers(0, len(PORT_LISTS) - 1)),
        st.tuples(st.just("port"), st.sampled_from(PORTS), st.sampled_from(["vm-a", "vm-b", None]),
                  st.integers(0, 1)),
        st.tuples(st.just("delete"), st.sampled_from(HOSTS + PORTS)),
        st.tuples(st.just("list"), st.sampled_from(["stamped", "own"])),
        # a listing that takes its snapshot now and is applied at "finish":
        # the cloud (and its events) may move meanwhile
        st.tuples(st.just("snapshot"), st.sampled_from(["stamped", "own"])),
        st.tuples(st.just("finish")),
        st.tuples(st.just("deliver"), st.integers(0, 40)),
        st.tuples(st.just("tamper"), st.sampled_from(HOSTS)),
    ),
    min_size=1, max_size=25,
)


class Cloud:
    """Objects as the cloud has them, each with the time it last changed."""

    def __init__(self) -> None:
        self.now = 0
        self.hosts: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.updated: dict[str, int] = {}
        self.deleted: set[str] = set()

    def _tick(self, ext: str) -> str:
        self.now += 1
        self.updated[ext] = self.now
        return make_version(self.now)

    def host(self, ext: str, attr: str, choice: int) -> Change | None:
        if ext in self.deleted:
            return None
        new = ext not in self.hosts
        row = self.hosts.setdefault(ext, {"hostname": "web", "status": "active", "port_ids": []})
        row[attr] = VALUES[attr][choice]
        fields = dict(row) if new else {attr: row[attr]}
        return Change(Kind.HOST, Op.UPSERT, ext, fields, self._tick(ext))

    def port_list(self, ext: str, choice: int) -> Change | None:
        if ext in self.deleted or ext not in self.hosts:
            return None
        self.hosts[ext]["port_ids"] = list(PORT_LISTS[choice])
        return Change(Kind.HOST, Op.UPSERT, ext, {"port_ids": PORT_LISTS[choice]}, self._tick(ext))

    def port(self, ext: str, host: str | None, address: int) -> Change | None:
        if ext in self.deleted:
            return None
        self.ports[ext] = {"host": host, "addresses": [f"10.0.0.{address + 1}"]}
        return Change(Kind.HOST_IP, Op.UPSERT, ext, dict(self.ports[ext]), self._tick(ext))

    def delete(self, ext: str) -> Change | None:
        kind = Kind.HOST if ext in HOSTS else Kind.HOST_IP
        if ext in self.deleted or ext not in (self.hosts if kind == Kind.HOST else self.ports):
            return None
        self.deleted.add(ext)
        return Change(kind, Op.DELETE, ext, {}, self._tick(ext))

    def listing(self, mode: str) -> tuple[list[Change], Floors]:
        """Every live object, stamped with the listing's start (floors, AWS
        style) or with its own update time (Nova servers)."""
        started = timezone.now()
        stamp = make_version(self.now) + "|listing"

        def version(ext: str) -> str:
            return stamp if mode == "stamped" else make_version(self.updated[ext])

        changes = [Change(Kind.HOST, Op.UPSERT, ext, dict(fields), version(ext), Source.FULL_SYNC)
                   for ext, fields in self.hosts.items() if ext not in self.deleted]
        changes += [Change(Kind.HOST_IP, Op.UPSERT, ext, dict(fields), version(ext),
                           Source.FULL_SYNC)
                    for ext, fields in self.ports.items() if ext not in self.deleted]
        floors = Floors(started, {Kind.HOST.value: stamp, Kind.HOST_IP.value: stamp}) \
            if mode == "stamped" else NO_FLOORS
        return changes, floors


def _registers(provider: CloudProvider) -> dict:
    """Everything apply decides, of every host and port (not the times)."""
    hosts = {
        row.host_id: (row.deleted_at is not None, row.hostname, row.status, sorted(row.port_ids),
                      row.field_versions, row.source_version)
        for row in CloudHost.all_objects.filter(cloudprovider=provider)
    }
    ports = {
        row.port_id: (row.deleted_at is not None, row.died_with_host, row.addresses,
                      row.claimed_host.host_id if row.claimed_host else None,
                      row.host.host_id if row.host else None, row.field_versions,
                      row.source_version)
        for row in CloudPort.all_objects.filter(cloudprovider=provider)
        .select_related("host", "claimed_host")
    }
    return {"hosts": hosts, "ports": ports}


class _Twins:
    """Two providers given the same history, one keeping digests."""

    def __init__(self) -> None:
        n = CloudProvider.objects.count()
        self.providers = {keep: CloudProvider.objects.create(name=f"digests-{n}-{keep}")
                          for keep in (True, False)}

    def apply(self, changes: list[Change], **kwargs) -> None:
        for keep, provider in self.providers.items():
            with override_settings(CLOUDSYNC_LISTING_DIGESTS=keep):
                apply(provider, changes, **kwargs)

    def tamper(self, host: str) -> None:  # a write behind apply's back: a listing must see it
        for provider in self.providers.values():
            CloudHost.all_objects.filter(cloudprovider=provider, host_id=host).update(
                hostname="tampered")

    def assert_same(self, step: object) -> None:
        assert _registers(self.providers[True]) == _registers(self.providers[False]), step


def _run(plan: list[tuple], picks: list[int]) -> None:
    twins, cloud = _Twins(), Cloud()
    pending: list[Change] = []
    listed = NO_FLOORS
    in_flight: tuple[list[Change], Floors] | None = None

    def list_now(changes: list[Change], floors: Floors) -> None:
        nonlocal listed
        twins.apply(changes, floors=floors, listed_at=floors.started_at or timezone.now())
        if floors:
            listed = floors.completed({})

    for step in plan:
        action, *args = step
        if action in ("host", "ports", "port", "delete"):
            make = {"host": cloud.host, "ports": cloud.port_list, "port": cloud.port,
                    "delete": cloud.delete}[action]
            change = make(*args)
            if change is not None:
                pending.append(change)
        elif action == "list":
            list_now(*cloud.listing(args[0]))
        elif action == "snapshot":
            in_flight = in_flight or cloud.listing(args[0])
        elif action == "finish":
            if in_flight:
                list_now(*in_flight)
            in_flight = None
        elif action == "tamper":
            twins.tamper(args[0])
        elif pending:
            twins.apply([pending.pop(args[0] % len(pending))], floors=listed)
        twins.assert_same(step)
    late = [pending.pop(k % len(pending)) for k in picks if pending] + pending
    for change in late:
        twins.apply([change], floors=listed)
        twins.assert_same(change)
    changes, floors = cloud.listing("own")
    twins.apply(changes, floors=floors, listed_at=timezone.now())
    twins.assert_same("the last listing")


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps, picks=st.lists(st.integers(0, 40), max_size=10))
# A listing that lost a field to a newer event must not vouch for the row:
# web -> (snapshot) -> db, delivered -> listing applied (loses) -> web, late;
# the next listing finds "web" again and must still set it.
@example(plan=[("host", "vm-a", "hostname", 0), ("deliver", 0), ("snapshot", "stamped"),
               ("host", "vm-a", "hostname", 1), ("deliver", 0), ("finish",),
               ("host", "vm-a", "hostname", 0), ("list", "stamped")], picks=[])
def test_skipping_what_a_digest_vouches_for_changes_nothing(plan, picks):
    """After every step, the provider keeping digests has exactly the
    registers of the one comparing every object."""
    _run(plan, picks)


# -- what a skip must never hide ---------------------------------------------

def _servers(n: int, hostname: str = "web") -> list[Change]:
    return [
        Change(Kind.HOST, Op.UPSERT, f"vm-{i}", {"hostname": hostname, "status": "active"},
               make_version(i + 1), Source.FULL_SYNC)
        for i in range(n)
    ]


def _locks(captured: CaptureQueriesContext) -> int:
    return sum("sync_cloudhost" in q["sql"] and "FOR NO KEY UPDATE" in q["sql"]
               for q in captured.captured_queries)


@pytest.fixture
def provider():
    return CloudProvider.objects.create(name="digests")


@pytest.mark.parametrize("keep", [True, False], ids=["digests", "no-digests"])
def test_a_repeated_listing_loads_no_row_it_vouched_for(provider, keep):
    with override_settings(CLOUDSYNC_LISTING_DIGESTS=keep):
        first = apply(provider, _servers(50))
        assert first.as_dict() == {"host": {"created": 50}}
        assert ListingDigest.objects.filter(kind="host").count() == (50 if keep else 0)
        with CaptureQueriesContext(connection) as captured:
            again = apply(provider, _servers(50))
    assert again.as_dict() == {"host": {"unchanged": 50}}
    assert (_locks(captured) == 0) is keep  # without digests every row is loaded and locked


def test_a_row_written_since_is_compared_again(provider):
    apply(provider, _servers(3))
    CloudHost.objects.filter(host_id="vm-1").update(hostname="tampered")  # not through apply
    result = apply(provider, _servers(3))
    assert result.as_dict() == {"host": {"unchanged": 2, "updated": 1}}
    assert set(CloudHost.objects.values_list("hostname", flat=True)) == {"web"}


def test_a_lost_cache_only_costs_a_comparison(provider):
    apply(provider, _servers(3))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sync_listingdigest")  # what crash recovery does to it
    with CaptureQueriesContext(connection) as captured:
        result = apply(provider, _servers(3, hostname="renamed"))
    assert _locks(captured) == 1
    assert result.as_dict() == {"host": {"updated": 3}}
    assert ListingDigest.objects.count() == 3  # vouched for again
    with CaptureQueriesContext(connection) as captured:
        apply(provider, _servers(3, hostname="renamed"))
    assert _locks(captured) == 0


def test_a_new_digest_format_compares_everything_once(provider, monkeypatch):
    apply(provider, _servers(3))
    monkeypatch.setattr(digests, "DIGEST_VERSION", digests.DIGEST_VERSION + 1)
    with CaptureQueriesContext(connection) as captured:
        apply(provider, _servers(3))
    assert _locks(captured) == 1


def test_only_a_listing_is_vouched_for_and_a_lost_field_is_not(provider):
    events = [Change(Kind.HOST, Op.UPSERT, "vm-0", {"hostname": "web", "status": "active"},
                     make_version(1))]
    apply(provider, events)
    assert not ListingDigest.objects.exists()  # events are not listings
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-0", {"status": "stopped"}, make_version(5))])
    # a listing older than the event for one of its fields leaves the row
    # differing from what it says: nothing to vouch for
    apply(provider, _servers(1))
    assert not ListingDigest.objects.exists()
    assert CloudHost.objects.get().status == "stopped"


# -- counterexamples a review found (each failed before the fix) ---------------
# Host changes carrying a port list are never skipped: applying a list claims
# ports (other rows) by their registers; and a skip needs the change to be
# at least as new as the row (else applying it counts it stale).

V = make_version

def _ports(provider):
    return {
        p.port_id: (p.deleted_at is not None, p.claimed_host.host_id if p.claimed_host else None,
                    p.host.host_id if p.host else None, p.field_versions)
        for p in CloudPort.all_objects.filter(cloudprovider=provider).select_related(
            "host", "claimed_host")
    }


def _both(history):
    out = {}
    for keep in (True, False):
        provider = CloudProvider.objects.create(name=f"p-{keep}")
        with override_settings(CLOUDSYNC_LISTING_DIGESTS=keep):
            for kwargs, changes in history:
                if kwargs.get("listed_at"):
                    kwargs = {"listed_at": timezone.now()}
                apply(provider, changes, **kwargs)
        out[keep] = _ports(provider)
    return out


def listing(*changes):
    return ({"listed_at": timezone.now()}, list(changes))


def event(*changes):
    return ({}, list(changes))


def test_resurrected_port_and_an_old_host_list():
    """A host list re-applied by a listing claims a port whose claim version
    dropped (tombstone restored by the listed_at rule resets field_versions):
    the host row was never written, so its digest still matches."""
    host = Change(Kind.HOST, Op.UPSERT, "vm-a", {"hostname": "a", "port_ids": ["p1"]}, V(10),
                  Source.FULL_SYNC)
    port = Change(Kind.HOST_IP, Op.UPSERT, "p1", {"host": "vm-b", "port_id": "p1",
                                                   "addresses": ["10.0.0.1"]}, V(6),
                  Source.FULL_SYNC)
    history = [
        listing(host),                                             # L1: vouches vm-a
        event(Change(Kind.HOST_IP, Op.DELETE, "p1", {}, V(20))),   # p1 deleted
        listing(host, port),   # L2: p1 restored (listed_at), claim reset to vm-b@6
        listing(host, port),   # L3: without digests vm-a's list (v10) claims p1 back
    ]
    out = _both(history)
    assert out[True] == out[False]


def test_equal_versions_host_list_vs_port_event():
    """Tie: a port's own change and a host list at the same version; the
    last applied wins. A listing re-applying the list flips the port back,
    unless its digest skips it."""
    host = Change(Kind.HOST, Op.UPSERT, "vm-a", {"hostname": "a", "port_ids": ["p1"]}, V(10),
                  Source.FULL_SYNC)
    history = [
        listing(host),
        event(Change(Kind.HOST_IP, Op.UPSERT, "p1", {"host": "vm-b", "port_id": "p1"}, V(10))),
        listing(host),
    ]
    out = _both(history)
    assert out[True] == out[False]


def test_purged_port_named_by_a_host_list():
    """A port tombstone purged while a live host's list still names it: a
    listing re-applying that list recreates it as a placeholder, a skip does not."""
    host = Change(Kind.HOST, Op.UPSERT, "vm-a", {"hostname": "a", "port_ids": ["p1"]}, V(10),
                  Source.FULL_SYNC)
    out = {}
    for keep in (True, False):
        provider = CloudProvider.objects.create(name=f"q-{keep}")
        with override_settings(CLOUDSYNC_LISTING_DIGESTS=keep):
            apply(provider, [host], listed_at=timezone.now())
            apply(provider, [Change(Kind.HOST_IP, Op.DELETE, "p1", {}, V(20))])
            CloudPort.all_objects.filter(cloudprovider=provider, port_id="p1").delete()  # retention
            apply(provider, [host], listed_at=timezone.now())
        out[keep] = _ports(provider)
    assert out[True] == out[False]


def test_same_snapshot_twice_chunked_port_before_host():
    """One pushed snapshot (generic driver: producer versions, host port
    lists), applied in two chunks as reconcile does past 1,000 objects, the
    port in the first chunk and the host naming it in the second, both at
    version 10. Applied again unchanged, the digest skips the host list."""
    port = Change(Kind.HOST_IP, Op.UPSERT, "p1", {"host": "vm-b", "port_id": "p1"}, V(10),
                  Source.FULL_SYNC)
    host = Change(Kind.HOST, Op.UPSERT, "vm-a", {"hostname": "a", "port_ids": ["p1"]}, V(10),
                  Source.FULL_SYNC)
    history = [listing(port), listing(host), listing(port), listing(host)]
    out = _both(history)
    assert out[True] == out[False]


def test_stamped_listing_with_an_earlier_stamp_counts_stale():
    """Two workers' clocks: L2 stamps (and floors) earlier than L1."""
    from datetime import timedelta

    now = timezone.now()
    counts = {}
    for keep in (True, False):
        provider = CloudProvider.objects.create(name=f"s-{keep}")
        with override_settings(CLOUDSYNC_LISTING_DIGESTS=keep):
            for start in (now, now - timedelta(seconds=5)):
                stamp = make_version(start, 0)
                floors = Floors(start, {"host": stamp})
                res = apply(provider, [Change(Kind.HOST, Op.UPSERT, "i-1", {"hostname": "a"},
                                              stamp, Source.FULL_SYNC)],
                            floors=floors, listed_at=start)
        counts[keep] = res.as_dict()
    assert counts[True] == counts[False]
