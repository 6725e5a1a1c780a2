"""A full sync that fills a table refreshes its planner statistics as it
goes (sync.table_stats): later chunks' lookups are planned for the table's
real size, not for the empty table it was (real Postgres, fake OpenStack)."""

from __future__ import annotations

import pytest
from django.db import connection

from sync import table_stats
from sync.models import CloudHost
from tests.sync.test_full_sync import full_sync, mode, provider, seed  # noqa: F401

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


def planner_rows(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


@pytest.fixture
def analyzed(monkeypatch) -> list[str]:
    """The tables Growth analyzed, in order (MIN_ROWS made small for a small cloud)."""
    calls: list[str] = []
    original = table_stats.Growth._analyze

    def _analyze(self, model):
        calls.append(model._meta.db_table)
        original(self, model)

    with connection.cursor() as cursor:  # (the planner knows them empty, as before a first sync)
        cursor.execute("ANALYZE sync_cloudhost, sync_cloudport, sync_listingdigest")
    monkeypatch.setattr(table_stats, "MIN_ROWS", 20)
    monkeypatch.setattr(table_stats.Growth, "_analyze", _analyze)
    return calls


def test_a_sync_filling_a_table_analyzes_it_as_it_grows(fake_openstack, provider, analyzed,  # noqa: F811
                                                         mode, monkeypatch):  # noqa: F811
    from sync import reconcile

    monkeypatch.setattr(reconcile, "CHUNK", 25)  # (many chunks, as a big cloud has)
    seed(fake_openstack, servers=100)
    full_sync(provider, mode=mode)
    assert CloudHost.objects.count() == 100
    assert "sync_cloudhost" in analyzed
    # a doubling schedule: a few times per table, not once per chunk
    assert 1 <= analyzed.count("sync_cloudhost") <= 3
    assert planner_rows("sync_cloudhost") >= 20
    assert "sync_listingdigest" in analyzed  # (each chunk's digest lookup joins it)


def test_a_sync_creating_little_analyzes_nothing(fake_openstack, provider, analyzed):  # noqa: F811
    seed(fake_openstack, servers=5)  # (17 objects, each with its digest: under 20)
    full_sync(provider)
    assert CloudHost.objects.count() == 5
    assert analyzed == []


def test_an_analyze_that_fails_is_logged_not_the_runs(caplog):
    """(A table it cannot analyze: the sync goes on, planned as before.)"""
    from types import SimpleNamespace

    class Missing:  # (a model whose table is not there)
        _meta = SimpleNamespace(db_table="no_such_table")

    growth = table_stats.Growth()
    missing = Missing
    growth._analyze(missing)
    assert growth.runs == []
    assert "could not analyze no_such_table" in caplog.text
    with connection.cursor() as cursor:  # the surrounding transaction is still usable
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
