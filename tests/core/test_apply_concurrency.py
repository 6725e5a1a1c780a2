"""Two workers applying to the same object at once serialize on the row."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from sync.apply import apply
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudFlavor, CloudHost, CloudProvider

pytestmark = pytest.mark.django_db(transaction=True)


def _run_in_threads(target, n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def runner(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_concurrent_creates_and_updates_of_one_host_converge():
    provider = CloudProvider.objects.create(name="conc")
    versions = list(range(1, 17))

    def work(i: int) -> None:
        v = versions[i]
        apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-1",
                                {"hostname": f"h{v}", "flavor": "m1", "status": "active"}, make_version(v))])

    errors = _run_in_threads(work, len(versions))
    assert errors == []
    rows = CloudHost.all_objects.filter(cloudprovider=provider)
    assert rows.count() == 1
    assert rows.get().hostname == "h16"  # the newest version won, whatever the order
    assert rows.get().source_version == make_version(16)
    assert CloudFlavor.all_objects.filter(cloudprovider=provider).count() == 1


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_concurrent_delete_and_late_update_never_resurrect():
    provider = CloudProvider.objects.create(name="conc2")
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": "a"}, make_version(1))])

    def work(i: int) -> None:
        if i == 0:
            apply(provider, [Change(Kind.HOST, Op.DELETE, "vm-1", {}, make_version(5))])
        else:
            apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": f"x{i}"}, make_version(1 + i))])

    assert _run_in_threads(work, 6) == []
    assert not CloudHost.objects.filter(cloudprovider=provider).exists()
    assert CloudHost.all_objects.get(cloudprovider=provider).deleted_at is not None


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_overlapping_new_objects_in_opposite_orders_do_not_deadlock():
    provider = CloudProvider.objects.create(name="conc3")
    ids = [f"vm-{n:04d}" for n in range(400)]

    def work(i: int) -> None:
        order = ids if i % 2 == 0 else list(reversed(ids))
        apply(provider, [Change(Kind.HOST, Op.UPSERT, ext, {"hostname": ext}, make_version(1)) for ext in order])

    assert _run_in_threads(work, 4) == []
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 400


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_concurrent_duplicates_of_host_lists_and_port_events_converge():
    """Issue 10's storm on one provider: Nova-style events (a host's complete
    port list with one change per port) and Neutron-style port / floating IP
    events, each sent 5 times from 8 threads in shuffled order, end in the
    in-order state; lock waits never turn into deadlocks."""
    import random

    from django.db import OperationalError

    from sync.models import CloudHostIP, CloudPort

    def nova(n, host, ports):
        v = make_version(n)
        return [Change(Kind.HOST, Op.UPSERT, host, {"port_ids": sorted(ports), "status": "active"}, v)] + [
            Change(Kind.HOST_IP, Op.UPSERT, p, {"host": host, "port_id": p, "addresses": [{"address": a}]}, v)
            for p, a in sorted(ports.items())
        ]

    def neutron(n, port, host, address):
        fields = {"host": host, "port_id": port, "addresses": [{"address": address}]}
        return [Change(Kind.HOST_IP, Op.UPSERT, port, fields, make_version(n))]

    def fip(n, parent):
        addrs = [{"address": "203.0.113.9", "kind": "floating"}] if parent else []
        return [Change(Kind.HOST_IP, Op.UPSERT, "fip:1", {"host": None, "port_id": parent, "addresses": addrs}, make_version(n))]

    events = [
        nova(1, "vm-1", {"p1": "10.0.0.1", "p2": "10.0.0.2"}),
        neutron(2, "p3", "vm-2", "10.0.0.3"),
        fip(3, "p1"),
        nova(4, "vm-1", {}),  # update listing none
        nova(5, "vm-2", {"p3": "10.0.0.3"}),
        nova(6, "vm-1", {"p1": "10.0.0.1"}),  # power_off listing p1 again
        neutron(7, "p2", "vm-2", "10.0.0.22"),  # p2 moves to vm-2
        fip(8, "p2"),
        nova(9, "vm-2", {"p2": "10.0.0.22", "p3": "10.0.0.3"}),
    ]

    def view(provider):
        rows = CloudPort.all_objects.filter(cloudprovider=provider).select_related("host")
        ports = {p.port_id: (p.deleted_at is None, p.host.host_id if p.host else None) for p in rows}
        ips = sorted(CloudHostIP.objects.filter(host__cloudprovider=provider).values_list("host__host_id", "address"))
        return ports, ips

    reference = CloudProvider.objects.create(name="storm-ref")
    for changes in events:
        apply(reference, changes)
    expected = view(reference)
    assert expected[1] == [("vm-1", "10.0.0.1"), ("vm-2", "10.0.0.22"), ("vm-2", "10.0.0.3"), ("vm-2", "203.0.113.9")]

    provider = CloudProvider.objects.create(name="storm")
    queue = events * 5
    random.Random(3).shuffle(queue)
    lock = threading.Lock()
    deadlocks: list[str] = []

    def work(i: int) -> None:
        while True:
            with lock:
                if not queue:
                    return
                changes = queue.pop()
            for _ in range(5):
                try:
                    apply(provider, changes)
                    break
                except OperationalError as exc:  # what ingest would retry
                    deadlocks.append(str(exc))

    assert _run_in_threads(work, 8) == []
    assert view(provider) == expected
    assert deadlocks == []


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_shared_rows_are_locked_last():
    """Many event batches name the same few projects and flavors (copies in
    every instance notification). A batch locks those shared rows only after
    its own hosts and ports, just before it commits, so concurrent batches
    wait on each other for that short moment, not for a whole apply."""
    provider = CloudProvider.objects.create(name="conc-shared")

    def batch(v: int) -> list[Change]:
        return [
            Change(Kind.PROJECT, Op.UPSERT, "proj", {"name": f"p{v}"}, make_version(v)),
            Change(Kind.FLAVOR, Op.UPSERT, "m1", {"name": f"f{v}"}, make_version(v)),
            Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": f"h{v}", "project": "proj",
                                                  "flavor": "m1"}, make_version(v)),
        ]

    apply(provider, batch(1))
    host = CloudHost.all_objects.get(cloudprovider=provider, host_id="vm-1")
    project_pk, flavor_pk = host.project_id, host.cloudflavor_id
    holder = connections.create_connection("default")  # another worker, mid-batch on the host
    prober = connections.create_connection("default")
    done = threading.Event()
    errors: list[BaseException] = []

    def second_batch() -> None:
        try:
            apply(provider, batch(2))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            done.set()
            connections.close_all()

    try:
        holder.set_autocommit(False)
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM sync_cloudhost WHERE id = %s FOR UPDATE", [host.pk])
        thread = threading.Thread(target=second_batch)
        thread.start()
        _wait_until_blocked(prober)
        assert not done.is_set()
        with prober.cursor() as cur:  # the blocked batch holds neither shared row yet
            for table, pk in (("sync_cloudproject", project_pk), ("sync_cloudflavor", flavor_pk)):
                prober.set_autocommit(False)
                cur.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])
                prober.rollback()
                prober.set_autocommit(True)
        holder.rollback()
        thread.join(30)
    finally:
        holder.close()
        prober.close()
    assert errors == [] and done.is_set()
    host.refresh_from_db()
    assert host.hostname == "h2" and host.project.name == "p2" and host.cloudflavor.name == "f2"


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_a_new_shared_row_never_deadlocks_with_a_referrer():
    """Batch B changes an image nobody has seen and holds a host; batch A's
    host names that image (a placeholder, inserted first) and waits for B's
    host. B's image row is inserted before B locks anything, so A waits on B
    and B never waits on A (it would, inserting the image after its hosts)."""
    provider = CloudProvider.objects.create(name="conc-new-shared")
    for ext in ("vm-1", "vm-2"):
        apply(provider, [Change(Kind.HOST, Op.UPSERT, ext, {"hostname": ext}, make_version(1))])
    vm2 = CloudHost.all_objects.get(cloudprovider=provider, host_id="vm-2")
    holder = connections.create_connection("default")
    prober = connections.create_connection("default")
    errors: list[BaseException] = []

    batch_b = [
        Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": "b1"}, make_version(2)),
        Change(Kind.HOST, Op.UPSERT, "vm-2", {"hostname": "b2"}, make_version(2)),
        Change(Kind.IMAGE, Op.UPSERT, "img-new", {"name": "fresh"}, make_version(2)),
    ]
    batch_a = [Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": "a1", "image": "img-new"},
                      make_version(3))]
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cur:  # B will lock vm-1, then wait here for vm-2
            cur.execute("SELECT 1 FROM sync_cloudhost WHERE id = %s FOR UPDATE", [vm2.pk])
        b = _apply_thread(provider, errors, batch_b)
        b.start()
        _wait_until_blocked(prober)
        a = _apply_thread(provider, errors, batch_a)
        a.start()
        _wait_until_blocked(prober, sessions=2)
        holder.rollback()
        b.join(30)
        a.join(30)
    finally:
        holder.close()
        prober.close()
    assert errors == []
    hosts = dict(CloudHost.all_objects.filter(cloudprovider=provider)
                 .values_list("host_id", "hostname"))
    assert hosts == {"vm-1": "a1", "vm-2": "b2"}
    image = CloudHost.all_objects.get(cloudprovider=provider, host_id="vm-1").image
    assert image.image_id == "img-new" and image.name == "fresh"


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
@pytest.mark.parametrize("other", ["committed", "still inserting"])
def test_a_new_row_another_transaction_inserted_first_is_applied_again(caplog, monkeypatch, other):
    """A batch builds a host nobody has yet in memory; another batch inserts
    the same host first. Whether that one has committed by the time the
    first writes (its insert is refused) or is still in its transaction (the
    insert gives up after LOCK_WAIT_MS), the first applies its changes again
    on the other's row: per-field versions decide, nothing is lost, and its
    history says "updated", not a second "created"."""
    from django.db import transaction

    from sync.apply.applier import KindApplier
    from sync.models import HistoryEntry

    provider = CloudProvider.objects.create(name="conc-redo")
    prober = connections.create_connection("default")
    first_applied, commit_first, first_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []
    results = {}
    real_flush = KindApplier._flush

    def flush(self, rows):  # "committed": the second writes only once the first committed
        if threading.current_thread().name == "second" and not first_done.is_set():
            commit_first.set()
            assert first_done.wait(30)
        return real_flush(self, rows)

    if other == "committed":
        monkeypatch.setattr(KindApplier, "_flush", flush)

    def first() -> None:  # applies vm-new at version 5, holds its commit
        try:
            with transaction.atomic():
                apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-new",
                                        {"hostname": "first", "status": "active"},
                                        make_version(5))])
                first_applied.set()
                assert commit_first.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            first_done.set()
            connections.close_all()

    def second() -> None:  # an older change naming a field the newer one did not
        try:
            with transaction.atomic():  # as ingest calls it: apply's own is a savepoint
                results["second"] = apply(provider, [Change(
                    Kind.HOST, Op.UPSERT, "vm-new", {"hostname": "second", "flavor": "m1"},
                    make_version(3))])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    a = threading.Thread(target=first)
    b = threading.Thread(target=second, name="second")
    try:
        with caplog.at_level("INFO", logger="sync.apply"):
            a.start()
            assert first_applied.wait(30)
            b.start()  # does not see vm-new (uncommitted): builds it
            if other == "still inserting":
                # its insert gives up on the first's, then the redo waits for it
                deadline = time.monotonic() + 20
                while "applying again" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.02)
                _wait_until_blocked(prober)
                commit_first.set()
            a.join(30)
            b.join(30)
            assert not a.is_alive() and not b.is_alive()
    finally:
        commit_first.set()
        first_done.set()
        prober.close()
    reason = ("inserted by another transaction first" if other == "committed"
              else "another transaction is inserting one of them")
    assert reason in caplog.text
    assert errors == []
    assert "applying again with placeholders" in caplog.text
    row = CloudHost.all_objects.get(cloudprovider=provider, host_id="vm-new")
    assert (row.hostname, row.status, row.cloudflavor.flavor_id) == ("first", "active", "m1")
    assert row.source_version == make_version(5)
    assert dict(results["second"].counts["host"]) == {"updated": 1}
    actions = list(HistoryEntry.objects.filter(object_pk=row.pk, kind="host")
                   .order_by("id").values_list("action", "changes"))
    assert [a for a, _ in actions] == ["created", "updated"]
    assert actions[1][1] == {"flavor": [None, "m1"]}


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_a_new_host_and_ports_naming_it_in_two_batches_do_not_deadlock(monkeypatch, caplog):
    """Batch A updates host h0 and creates h1 (built in memory, inserted at
    its flush); batch B's port events name h0 and h1: B inserts h1 as a
    placeholder, then waits on h0, which A holds. A's insert of h1 must not
    wait on B (a deadlock): it gives up at once and A is redone with
    placeholders. (From the review of the build-new-rows change.)"""
    from sync.apply.applier import KindApplier
    from sync.models import CloudPort

    provider = CloudProvider.objects.create(name="conc-build-1")
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "h0", {"hostname": "h0"}, make_version(1))])
    prober = connections.create_connection("default")
    a_ready, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    real_flush = KindApplier._flush

    def flush(self, rows):  # hold batch A between its rows' lock and its flush
        if threading.current_thread().name == "A" and self.kind == Kind.HOST and not go.is_set():
            a_ready.set()
            assert go.wait(30)
        return real_flush(self, rows)

    monkeypatch.setattr(KindApplier, "_flush", flush)

    a = _apply_thread(provider, errors, [
        Change(Kind.HOST, Op.UPSERT, "h0", {"hostname": "h0b"}, make_version(2)),
        Change(Kind.HOST, Op.UPSERT, "h1", {"hostname": "h1"}, make_version(2))], name="A")
    b = _apply_thread(provider, errors, [
        Change(Kind.HOST_IP, Op.UPSERT, "p0", {"host": "h0"}, make_version(2)),
        Change(Kind.HOST_IP, Op.UPSERT, "p1", {"host": "h1"}, make_version(2))], name="B")
    caplog.set_level("INFO", logger="sync.apply")
    try:
        a.start()
        assert a_ready.wait(30)
        b.start()
        _wait_until_blocked(prober)
    finally:
        go.set()
    a.join(30)
    b.join(30)
    prober.close()
    assert not a.is_alive() and not b.is_alive()
    assert errors == []
    hosts = dict(CloudHost.all_objects.filter(cloudprovider=provider)
                 .values_list("host_id", "hostname"))
    assert "another transaction is inserting one of them" in caplog.text  # (gave up, redone)
    assert hosts == {"h0": "h0b", "h1": "h1"}
    assert CloudPort.all_objects.filter(cloudprovider=provider).count() == 2


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite serializes writers itself")
def test_a_new_port_and_a_host_list_naming_it_do_not_deadlock():
    """Batch A is port P's own first event (P built in memory), batch B a
    host's port list naming P (a placeholder, inserted unlocked); both must
    lock the floating IP bound to P. Whoever waits on the other's insert of
    P while holding that lock would deadlock. (From the review.)"""
    from sync.models import CloudPort

    provider = CloudProvider.objects.create(name="conc-build-2")
    apply(provider, [
        Change(Kind.HOST, Op.UPSERT, "h1", {"hostname": "h1"}, make_version(1)),
        Change(Kind.HOST, Op.UPSERT, "h2", {"hostname": "h2"}, make_version(1)),
        # a floating IP known before its port
        Change(Kind.HOST_IP, Op.UPSERT, "fip:1", {"port_id": "P", "addresses": ["1.2.3.4"]},
               make_version(1)),
    ])
    fip = CloudPort.all_objects.get(cloudprovider=provider, port_id="fip:1")
    prober = connections.create_connection("default")
    holder = connections.create_connection("default")
    errors: list[BaseException] = []

    a = _apply_thread(provider, errors, [Change(
        Kind.HOST_IP, Op.UPSERT, "P", {"host": "h2", "addresses": ["10.0.0.1"]}, make_version(2))])
    b = _apply_thread(provider, errors, [
        Change(Kind.HOST, Op.UPSERT, "h1", {"port_ids": ["P"]}, make_version(3))])
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM sync_cloudport WHERE id = %s FOR UPDATE", [fip.pk])
        a.start()
        _wait_until_blocked(prober, sessions=1)  # A: built P, waits for the floating IP
        b.start()
        _wait_until_blocked(prober, sessions=2)  # B: inserted P, waits for the floating IP
    finally:
        holder.rollback()
    a.join(30)
    b.join(30)
    prober.close()
    holder.close()
    assert not a.is_alive() and not b.is_alive()
    assert errors == []
    port = CloudPort.all_objects.get(cloudprovider=provider, port_id="P")
    assert port.host.host_id == "h1"  # the newer claim (the list, version 3) wins
    assert CloudPort.all_objects.get(pk=fip.pk).host_id == port.host_id


def _apply_thread(
    provider, errors: list[BaseException], changes: list[Change], name: str | None = None
) -> threading.Thread:
    """A thread (not started) applying ``changes``; what it raises goes to ``errors``."""
    def target() -> None:
        try:
            apply(provider, changes)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=target, name=name)


def _wait_until_blocked(conn, timeout: float = 20.0, sessions: int = 1) -> None:
    """Until ``sessions`` sessions of the test database wait for a lock."""
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")
            if cur.fetchone()[0] >= sessions:
                return
            time.sleep(0.05)
    raise AssertionError(f"{sessions} session(s) never waited for a lock")
