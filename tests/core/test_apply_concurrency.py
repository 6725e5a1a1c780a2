"""Two workers applying to the same object at once serialize on the row."""

from __future__ import annotations

import threading

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
