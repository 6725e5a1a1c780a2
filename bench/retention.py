"""Retention and history costs (issue 17): bounded inbox, history on vs off.

    python -m bench.retention [--events 2000000] [--days 30] [--repeats 5]
                              [--ingest 4000] [--servers 2000] [--json FILE]
                              [--only retention|ingest|fullsync]

Three measurements on a throwaway Postgres database (``DATABASE_URL``'s
server, database ``cloudsync_bench_retention``, dropped at the end):

* **Continuous load with purges**: ``--events`` inbox events spread over
  ``--days`` simulated days (realistic timestamps: received through the day,
  processed 0.2 s later; 97 % processed, 2 % ignored, 1 % failed), inserted
  day by day server-side (``INSERT … SELECT generate_series``), each day
  followed by ``sync.retention.purge(now=<end of that day>)``. Reports the
  inbox's row count and table size (``pg_total_relation_size``) after each
  day's purge and a VACUUM (what autovacuum does between daily purges): once
  the retention window (14 days) is reached, both stay flat (failed events,
  1 %, are kept 90 days and still grow slowly).
* **Ingest, history on vs off**: in-process ``ingest_bodies`` of ``--ingest``
  Nova versioned notifications (one per body, batches of 200 bodies, as a
  worker takes them), in a fresh process per measurement with
  ``CLOUDSYNC_HISTORY`` 1 or 0, alternating, ``--repeats`` times each; medians.
* **Full sync, history on vs off**: a full sync from an empty inventory of a
  fake OpenStack with ``--servers`` servers (``bench.fullsync``'s fake cloud
  and measured child), alternating the same way; medians. From empty is the
  worst case for history (every object gets a "created" entry); a no-change
  re-sync writes no history at all.

The machine may be shared: alternate runs and medians smooth that, not remove it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fullsync import (  # noqa: E402
    FakeCloudProcess,
    _child_env,
    create_database,
    drop_database,
    run_child,
)

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/cloudsync_bench_retention"


# -- children (fresh processes) ---------------------------------------------------


def child_load(events: int, days: int) -> dict[str, Any]:
    """Insert ``events`` over ``days`` days, purging after each day."""
    import django

    django.setup()
    from django.db import connection

    from sync import retention
    from sync.models import CloudProvider

    provider = CloudProvider.objects.create(
        name=f"bench-retention-{time.time()}", cloud_sync_driver="noop"
    )
    per_day = events // days
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rows = []
    for day in range(days):
        day_start = start + timedelta(days=day)
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO sync_event (cloudprovider_id, key, event_type, status, attempts, error,
                                        body, result, occurred_at, received_at, processed_at,
                                        created_at, attempted_at)
                SELECT %s, md5('d' || %s || '-' || n), 'compute.instance.update',
                       CASE WHEN n %% 100 = 0 THEN 'failed' WHEN n %% 50 = 1 THEN 'ignored'
                            ELSE 'processed' END,
                       1, '',
                       jsonb_build_object('message_id', md5('d' || %s || '-' || n),
                                          'event_type', 'compute.instance.update',
                                          'payload', jsonb_build_object('instance_id', md5(n::text))),
                       '{"host": {"updated": 1}}'::jsonb,
                       ts - interval '1 second', ts, ts + interval '200 milliseconds', ts, NULL
                FROM (SELECT n, %s::timestamptz + (n * 86400.0 / %s) * interval '1 second' AS ts
                      FROM generate_series(0, %s - 1) AS n) AS g
                """,
                [provider.pk, day, day, day_start, per_day, per_day],
            )
        inserted = time.perf_counter() - t0
        t1 = time.perf_counter()
        run = retention.purge(now=day_start + timedelta(days=1), batch=5000)
        purge_s = time.perf_counter() - t1
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), pg_total_relation_size('sync_event') FROM sync_event")
            count, size = cursor.fetchone()
            # What autovacuum does between daily purges (here at once, for a stable
            # reading): deleted rows' space is reused by the next day's inserts.
            cursor.execute("VACUUM sync_event")
            vacuumed, parts = _sizes(cursor)
        reindex = run.removed["inbox_reindex"]
        rows.append(
            {
                "day": day + 1,
                "inbox_rows": count,
                "inbox_mb": round(size / 2**20, 1),
                "inbox_mb_vacuumed": round(vacuumed / 2**20, 1),
                "parts_mb": {k: round(v / 2**20, 1) for k, v in parts.items()},
                "removed": run.removed["events"] + run.removed["failed_events"],
                "batches": run.batches,
                "insert_s": round(inserted, 2),
                "purge_s": round(purge_s, 2),
                "reindex_s": reindex.get("seconds") if reindex["rebuilt"] else None,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"per_day": per_day, "days": rows}


def _sizes(cursor: Any) -> tuple[int, dict[str, int]]:
    """The inbox's total size and its parts: heap, TOAST, each index."""
    cursor.execute(
        """
        SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid),
               coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)
        FROM pg_class c WHERE c.oid = 'sync_event'::regclass
        """
    )
    total, heap, toast = cursor.fetchone()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)
        FROM pg_index i WHERE i.indrelid = 'sync_event'::regclass ORDER BY 1
        """
    )
    return total, {"heap": heap, "toast": toast, **dict(cursor.fetchall())}


def child_ingest(n: int) -> dict[str, Any]:
    """Ingest ``n`` Nova notifications in batches of 200 bodies; events/s."""
    import django

    django.setup()
    from sync.gc_tuning import tune

    tune()  # as a worker process starts (project.celery)
    from django.conf import settings

    from sync.ingest import Body, ingest_bodies
    from sync.models import CloudProvider, HistoryEntry
    from tests.faults.events import nova_stream

    tag = f"{os.getpid()}-{time.time()}"
    provider = CloudProvider(
        name=f"bench-ingest-{tag}",
        cloud_sync_driver="openstack.ocata",
        cloud_sync_enabled=True,
        client_config={
            "auth_url": "http://k.invalid:5000/v3",
            "username": "u",
            "password": "p",
            "project_name": "a",
        },
    )
    provider.full_clean()
    provider.save()
    texts = [m.text for m in nova_stream(n, max(n // 5, 1), tag)]
    now = datetime.now(UTC).isoformat()
    batches = [texts[i : i + 200] for i in range(0, len(texts), 200)]
    start = time.perf_counter()
    for batch in batches:
        ingest_bodies([Body(provider.pk, text, now) for text in batch])
    seconds = time.perf_counter() - start
    return {
        "history": settings.CLOUDSYNC_HISTORY,
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds, 1),
        "history_rows": HistoryEntry.objects.filter(cloudprovider=provider).count(),
    }


def _run(database_url: str, *args: str, history: bool) -> dict[str, Any]:
    env = _child_env(database_url)
    env["CLOUDSYNC_HISTORY"] = "1" if history else "0"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.retention", "--child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fullsync(database_url: str, provider_id: int, history: bool) -> dict[str, Any]:
    os.environ["CLOUDSYNC_HISTORY"] = "1" if history else "0"
    try:
        run_child(database_url, "empty-inventory")
        return run_child(database_url, "sync", "--provider-id", str(provider_id))
    finally:
        os.environ.pop("CLOUDSYNC_HISTORY", None)


def _compare(label: str, on: list[float], off: list[float], unit: str) -> dict[str, Any]:
    m_on, m_off = statistics.median(on), statistics.median(off)
    return {
        "what": label,
        "unit": unit,
        "history_on": on,
        "history_off": off,
        "median_on": m_on,
        "median_off": m_off,
        "slowdown_pct": round((m_on / m_off - 1) * 100, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ingest", type=int, default=4000)
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--only", choices=["retention", "ingest", "fullsync"])
    parser.add_argument("--database-url")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--child", choices=["load", "ingest"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "load":
        print(json.dumps(child_load(args.events, args.days)))
        return 0
    if args.child == "ingest":
        print(json.dumps(child_ingest(args.ingest)))
        return 0

    database_url = args.database_url
    if not database_url:
        base = os.environ.get("DATABASE_URL") or DEFAULT_DB
        database_url = urlunsplit(urlsplit(base)._replace(path="/" + DEFAULT_DB.rsplit("/", 1)[1]))
    print(f"database {database_url} (created now, dropped at the end)", file=sys.stderr)
    out: dict[str, Any] = {}
    create_database(database_url)
    try:
        if args.only in (None, "retention"):
            out["load"] = _run(
                database_url,
                "load",
                "--events",
                str(args.events),
                "--days",
                str(args.days),
                history=True,
            )
        if args.only in (None, "ingest"):
            on, off = [], []
            for _ in range(args.repeats):
                for history, into in ((True, on), (False, off)):
                    r = _run(database_url, "ingest", "--ingest", str(args.ingest), history=history)
                    print(f"ingest history={history}: {r}", file=sys.stderr, flush=True)
                    into.append(r["events_per_s"])
            # events/s: higher is better; slowdown = time on / time off - 1
            cmp_ = _compare("ingest", [1 / x for x in on], [1 / x for x in off], "s/event")
            cmp_["events_per_s_on"], cmp_["events_per_s_off"] = on, off
            out["ingest"] = cmp_
        if args.only in (None, "fullsync"):
            with FakeCloudProcess(args.servers) as fake:
                config = json.dumps(fake.info["client_config"])
                provider_id = run_child(database_url, "prepare", "--config", config)["provider_id"]
                on, off = [], []
                for _ in range(args.repeats):
                    for history, into in ((True, on), (False, off)):
                        r = _fullsync(database_url, provider_id, history)
                        if r["status"] != "succeeded":
                            raise SystemExit(f"full sync failed: {r}")
                        print(
                            f"full sync history={history}: {r['seconds']} s",
                            file=sys.stderr,
                            flush=True,
                        )
                        into.append(r["seconds"])
                out["fullsync"] = _compare(
                    f"full sync of {args.servers} servers from empty", on, off, "s"
                )
    finally:
        drop_database(database_url)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    print(table(out))
    return 0


def table(out: dict[str, Any]) -> str:
    lines = []
    if "load" in out:
        days = out["load"]["days"]
        lines += [
            f"Continuous load: {out['load']['per_day']} events/day, purged daily",
            "| day | inbox rows | inbox MB (after VACUUM) | heap MB | indexes MB | removed "
            "| batches | purge s | index rebuild s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for d in days:
            if d["day"] in (1, 7, 14, 15, 16, 20, 25, len(days)) or d.get("reindex_s") is not None:
                parts = d.get("parts_mb", {})
                indexes = sum(v for k, v in parts.items() if k not in ("heap", "toast"))
                lines.append(
                    f"| {d['day']} | {d['inbox_rows']:,} | {d['inbox_mb_vacuumed']} | "
                    f"{parts.get('heap', '')} | {indexes:.1f} | {d['removed']:,} | "
                    f"{d['batches']} | {d['purge_s']} | {d.get('reindex_s') or ''} |"
                )
    for key in ("ingest", "fullsync"):
        if key in out:
            c = out[key]
            lines.append(
                f"{c['what']}: median on {c['median_on']:.4g} {c['unit']}, off "
                f"{c['median_off']:.4g} {c['unit']}: {c['slowdown_pct']:+.1f} %"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
