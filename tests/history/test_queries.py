"""The history list pages never count or DISTINCT the whole table, and the
history indexes serve the reads they exist for (real Postgres)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync.models import HistoryEntry, SyncRun

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="Postgres plans and statistics"),
]

NOW = timezone.now()


def entries(provider, n: int, run=None) -> list[HistoryEntry]:
    return HistoryEntry.objects.bulk_create(
        HistoryEntry(
            cloudprovider=provider,
            kind="host" if i % 2 else "host_ip",
            object_pk=i,
            external_id=f"obj-{i}",
            applied_at=NOW - timedelta(seconds=i // 2),  # (pairs share a time)
            action="updated",
            changes={"status": ["a", "b"]},
            cause="event",
            run=run,
        )
        for i in range(n)
    )


def whole_table_scans(queries: list[dict]) -> list[str]:
    """Statements on the history table that DISTINCT it, or COUNT it without a bound."""
    out = []
    for q in queries:
        sql = q["sql"]
        if "sync_historyentry" not in sql:
            continue
        if "DISTINCT" in sql.upper():
            out.append(sql)
        elif re.search(r"COUNT\(", sql, re.I) and "LIMIT" not in sql.upper():
            out.append(sql)
    return out


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("q", "q@example.com", "pw"))
    return client


def test_the_admin_history_list_neither_counts_nor_distincts_the_table(
    admin_client, provider, monkeypatch
):
    from sync.admin.common import EstimatedCountPaginator

    entries(provider, 30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_historyentry")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 10)  # (30 rows: "big")
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get("/admin/sync/historyentry/")
    assert page.status_code == 200
    assert whole_table_scans(ctx.captured_queries) == []
    html = page.content.decode()
    assert "30 history entries" in html  # the planner's estimate (exact after ANALYZE)
    assert 'href="?kind=host_ip"' in html and 'href="?kind=project"' in html  # fixed choices
    # a filtered list is counted (its filter narrows it) and the kind filter filters
    filtered = admin_client.get("/admin/sync/historyentry/", {"kind": "host"})
    assert "15 history entries" in filtered.content.decode()


def test_the_api_history_list_pages_by_cursor_without_a_count(admin_client, provider):
    made = entries(provider, 7)
    newest_first = sorted(made, key=lambda e: (e.applied_at, e.pk), reverse=True)
    seen, url, params = [], "/api/history/", {"limit": 3}
    with CaptureQueriesContext(connection) as ctx:
        while url:
            page = admin_client.get(url, params).json()
            assert "count" not in page
            seen += [r["id"] for r in page["results"]]
            url, params = page["next"], None
    assert seen == [e.pk for e in newest_first]  # each once, in order, across equal times
    assert whole_table_scans(ctx.captured_queries) == []
    assert admin_client.get("/api/history/", {"cursor": "nonsense"}).status_code == 400


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        # (a few rows: without this the planner may as well filter another
        # index and sort; the question is whether an index serves the order)
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_history_by_external_id_and_by_run_is_read_through_an_index(provider):
    from sync import history_reads

    run = SyncRun.objects.create(cloudprovider=provider, kind="full")
    entries(provider, 4, run=run)
    HistoryEntry.objects.filter(external_id="obj-1").update(action="deleted")  # (purged)
    with CaptureQueriesContext(connection) as ctx:
        named = history_reads.named("obj-1")
    looked = [q["sql"] for q in ctx.captured_queries if "sync_historyentry" in q["sql"]]
    assert len(looked) == 1
    shown = plan(looked[0], [])
    # the partial index, searched by external id (not read whole)
    assert "history_deleted" in shown
    cond = next(line for line in shown.splitlines() if "Index Cond" in line)
    assert "external_id" in cond
    by_id = HistoryEntry.objects.filter(named).order_by("-applied_at")
    sql, params = by_id.query.sql_with_params()
    assert "history_object" in plan(sql, list(params))
    assert [e.object_pk for e in by_id] == [1]
    by_run = HistoryEntry.objects.filter(run_id=run.pk).order_by("applied_at")[:50]
    sql, params = by_run.query.sql_with_params()
    shown = plan(sql, list(params))
    assert "history_run_applied" in shown and "Sort" not in shown


def test_history_by_event_is_read_through_its_partial_index(provider):
    from sync.models import Event

    event = Event.objects.create(
        cloudprovider=provider, key="k", event_type="t", status="processed", received_at=NOW
    )
    made = entries(provider, 4)
    HistoryEntry.objects.filter(pk__in=[e.pk for e in made[:2]]).update(event=event)
    by_event = HistoryEntry.objects.filter(event_id=event.pk).order_by("applied_at")[:50]
    sql, params = by_event.query.sql_with_params()
    shown = plan(sql, list(params))
    assert "history_event" in shown and "Sort" not in shown
    found = list(by_event)  # (in time order; the two share a time, so either comes first)
    assert sorted(found, key=lambda e: e.pk) == made[:2]
    assert [e.applied_at for e in found] == sorted(e.applied_at for e in made[:2])


def test_only_entries_with_a_cause_of_that_kind_are_in_the_partial_indexes(provider):
    """An entry has an event or a run: the other index does not hold it
    (every insert would pay for a NULL otherwise)."""
    run = SyncRun.objects.create(cloudprovider=provider, kind="full")
    entries(provider, 6, run=run)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index "
            "WHERE indrelid = 'sync_historyentry'::regclass"
        )
        indexes = dict(cursor.fetchall())
    assert "history_event" in indexes and "IS NOT NULL" in indexes["history_event"]
    assert "history_run_applied" in indexes and "IS NOT NULL" in indexes["history_run_applied"]
    # the provider's own FK index is gone (history_provider leads with it)
    assert not any("cloudprovider_id" in name for name in indexes)


def test_the_admin_event_list_neither_counts_nor_distincts_the_inbox(
    admin_client, provider, monkeypatch
):
    from sync.admin.common import EstimatedCountPaginator
    from sync.models import Event

    Event.objects.bulk_create(
        Event(cloudprovider=provider, key=f"k{i}", event_type=f"type.{i % 3}", status="processed",
              received_at=NOW)
        for i in range(30)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_event")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 10)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get("/admin/sync/event/")
    assert page.status_code == 200
    scans = [q["sql"] for q in ctx.captured_queries if '"sync_event"' in q["sql"] and (
        "DISTINCT" in q["sql"].upper()
        or (re.search(r"COUNT\(", q["sql"], re.I) and "LIMIT" not in q["sql"].upper()))]
    assert scans == []
    # the type is searched for instead (exactly)
    found = admin_client.get("/admin/sync/event/", {"q": "type.1"})
    assert "10 events" in found.content.decode()
