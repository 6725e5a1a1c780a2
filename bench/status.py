"""Status page, overview and status API with a large inbox: time per request,
SQL statements, and the query plans of the aggregates.

    python -m bench.status [--events 10M] [--hosts 100k] [--providers 10] [--rounds 10]

Fills a throwaway Postgres database (``cloudsync_bench_status`` on the server
of DATABASE_URL, default ``postgres://postgres@127.0.0.1:5432``; created,
migrated, dropped at the end unless ``--keep-db``) with bulk SQL
(``generate_series``), no ORM objects:

* ``--providers`` providers; the first ("bench-0") holds 90 % of the inbox and
  the ``--hosts`` hosts, the others share the rest;
* ``--events`` inbox rows received over the last 7 days (97 % processed,
  2 % ignored, 0.6 % failed, 0.3 % dead, 0.1 % queued; bodies left empty:
  the figures never read them);
* the per-5-minute rollups the worker would have written for 8 days
  (received, processed and ignored in four lag buckets, failed, dead);
* 40 full syncs per provider with counts, drift and coverage.

Then, in this process, Django's test client (the whole request: middleware,
session login, view, template or serializer; no HTTP socket) requests each
page ``--rounds`` times after one warm-up and reports the median and the
slowest, with the SQL statements per request; queue depths are read from
the Redis at REDIS_URL (LLEN only). Finally it prints EXPLAIN (ANALYZE,
BUFFERS) of every SELECT the provider page and the overview run, and the
time of the coverage count a full sync makes when it ends. Target: every
page < 200 ms. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/cloudsync_bench_status"
TARGET_MS = 200.0


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def _admin_exec(database_url: str, *statements: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def create_database(database_url: str) -> None:
    name = _name(database_url)
    _admin_exec(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=env, check=True)


def drop_database(database_url: str) -> None:
    _admin_exec(database_url, f'DROP DATABASE IF EXISTS "{_name(database_url)}" WITH (FORCE)')


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


FILL = {
    "providers": """
        INSERT INTO sync_cloudprovider (name, cloud_sync_enabled, cloud_sync_driver, client_config,
            endpoint_secret, created_at, modified_at, last_full_sync_status, listing_floors)
        SELECT 'bench-' || i, true, 'noop', '', '', now(), now(), 'succeeded', '{}'
        FROM generate_series(0, %(providers)s - 1) AS i""",
    # 90 % of the inbox to the first provider, the rest spread over the others
    "events": """
        INSERT INTO sync_event (cloudprovider_id, key, event_type, status, attempts, error, body,
            result, occurred_at, received_at, processed_at, created_at, attempted_at)
        SELECT p.id, 'k-' || i, 'compute.instance.update',
            CASE WHEN i %% 1000 < 970 THEN 'processed' WHEN i %% 1000 < 990 THEN 'ignored'
                 WHEN i %% 1000 < 996 THEN 'failed' WHEN i %% 1000 < 999 THEN 'dead'
                 ELSE 'queued' END,
            1, '', NULL, '{}', r.at, r.at, r.at + interval '0.3 second', r.at, NULL
        FROM generate_series(%(start)s, %(stop)s - 1) AS i
        CROSS JOIN LATERAL (SELECT now() - (i::float8 / %(events)s) * interval '7 days' AS at) r
        JOIN sync_cloudprovider p ON p.name = 'bench-' ||
            CASE WHEN i %% 10 < 9 OR %(providers)s = 1 THEN 0
                 ELSE 1 + (i / 10) %% greatest(%(providers)s - 1, 1) END""",
    "hosts": """
        INSERT INTO sync_cloudhost (cloudprovider_id, source_version, field_versions, last_seen_at,
            last_event_at, last_synced_by, deleted_at, created_at, modified_at, host_id, hostname,
            status, image_ref, hypervisor, tags, metadata, launched_at, port_ids)
        SELECT p.id, '2026-01-01', '{}', now(),
            CASE WHEN i %% 10 < 3 THEN now() - (i %% 1440) * interval '1 minute' END,
            'event:x', NULL, now() - interval '30 days',
            now() - (i %% 1440) * interval '1 minute', 'host-' || i, 'vm-' || i, 'active', '',
            'compute-' || (i %% 50), '[]', '{}', NULL, '[]'
        FROM generate_series(1, %(hosts)s) AS i JOIN sync_cloudprovider p ON p.name = 'bench-0'""",
    # what the worker's batches would have written: per provider and 5 minutes, 8 days
    "rollups": """
        INSERT INTO sync_eventrollup (cloudprovider_id, period, outcome, lag_bucket, count)
        SELECT p.id, m.period, o.outcome, o.bucket,
            o.n * (CASE WHEN p.name = 'bench-0' THEN 45 ELSE 5 END)
        FROM sync_cloudprovider p
        CROSS JOIN generate_series(to_timestamp(floor(extract(epoch FROM now()) / 300) * 300)
                                       - interval '8 days',
                                   now(), interval '5 minutes') AS m(period)
        CROSS JOIN (VALUES ('received', -1, 100), ('processed', 8, 60), ('processed', 9, 30),
                           ('processed', 12, 5), ('processed', 15, 2), ('ignored', 9, 2),
                           ('failed', -1, 1), ('dead', -1, 1)) AS o(outcome, bucket, n)""",
    "runs": """
        INSERT INTO sync_syncrun (cloudprovider_id, kind, status, started_at, finished_at, counts,
            drift_healed, drift, plan, error, triggered_by, heartbeat_at, worker, parts,
            events_applied, coverage_since, progress)
        SELECT p.id, 'full', 'succeeded', now() - j * interval '1 day',
            now() - j * interval '1 day' + interval '70 seconds',
            '{"host": {"unchanged": 99000, "updated": 1000}}', 30 + j, '{}', NULL, '',
            'beat', NULL, '', '{}', 970 - j, now() - (j + 1) * interval '1 day', '{}'
        FROM sync_cloudprovider p CROSS JOIN generate_series(1, 40) AS j""",
}


def fill(database_url: str, events: int, hosts: int, providers: int) -> dict[str, float]:
    import psycopg

    times: dict[str, float] = {}
    params = {"events": events, "hosts": hosts, "providers": providers}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in ("providers", "hosts", "rollups", "runs"):
            started = time.perf_counter()
            conn.execute(FILL[name], params)
            times[name] = time.perf_counter() - started
            _log(f"   {name}: {times[name]:.1f} s")
        started = time.perf_counter()
        chunk = 1_000_000
        for start in range(0, events, chunk):
            conn.execute(FILL["events"], {**params, "start": start,
                                          "stop": min(start + chunk, events)})
            _log(f"   events: {min(start + chunk, events):,} rows, "
                 f"{time.perf_counter() - started:.0f} s")
        times["events"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        times["vacuum analyze"] = time.perf_counter() - started
        _log(f"   vacuum analyze: {times['vacuum analyze']:.1f} s")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('sync_event'))").fetchone()
        _log(f"   inbox table with indexes: {size[0]}")
    return times


def measure(rounds: int) -> tuple[list[dict], dict]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from sync import coverage, status
    from sync.models import CloudProvider

    big = CloudProvider.objects.get(name="bench-0")
    user = User.objects.create_superuser("bench-status")
    client = Client()
    client.force_login(user)
    pages = [
        ("status page of one provider", f"/status/{big.pk}/"),
        ("overview of every provider", "/status/"),
        ("`GET /api/cloud-providers/<id>/status/`", f"/api/cloud-providers/{big.pk}/status/"),
        ("`GET /api/cloud-providers/status/`", "/api/cloud-providers/status/"),
        # reads no table: counters from the process registry (or the
        # multiprocess files), queue depths from Redis
        ("`GET /metrics`", "/metrics"),
    ]
    results = []
    for label, url in pages:
        assert client.get(url).status_code == 200, url  # warm-up
        times = []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        results.append({"page": label, "url": url, "median": statistics.median(times),
                         "max": max(times), "queries": len(queries), "bytes": len(response.content)})
        _log(f"   {label}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")

    plans = {}
    for label, call in (("provider page", lambda: status.provider_status(big)),
                        ("overview", status.overview)):
        with CaptureQueriesContext(connection) as queries:
            call()
        for i, query in enumerate(q["sql"] for q in queries.captured_queries):
            if query.lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query)
                    plans[f"{label} #{i + 1}"] = (query, [row[0] for row in cursor.fetchall()])
    from datetime import timedelta

    from django.utils import timezone

    started = time.perf_counter()
    applied = coverage.applied_by_events(big.pk, timezone.now() - timedelta(days=1),
                                         timezone.now())
    extra = {"coverage_ms": (time.perf_counter() - started) * 1000, "coverage_rows": applied,
             "plans": plans}
    return results, extra


def table(results: list[dict], events: int, hosts: int) -> str:
    lines = [f"Inbox {events:,} rows, {hosts:,} hosts; target < {TARGET_MS:.0f} ms.", "",
             "| request | median | slowest | SQL statements | target met |",
             "|---|---:|---:|---:|---|"]
    for r in results:
        met = "yes" if r["median"] < TARGET_MS else "**no**"
        lines.append(f"| {r['page']} | {r['median']:.1f} ms | {r['max']:.1f} ms | {r['queries']} "
                     f"| {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="10M", help="inbox rows (default 10M)")
    parser.add_argument("--hosts", default="100k", help="hosts of the big provider (default 100k)")
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10, help="requests per page (default 10)")
    parser.add_argument("--database-url", help="exactly this database (dropped at the end!)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument("--no-plans", action="store_true", help="skip the EXPLAIN output")
    args = parser.parse_args(argv)
    events, hosts = parse_size(args.events), parse_size(args.hosts)
    database_url = args.database_url
    if not database_url:
        base = os.environ.get("DATABASE_URL") or DEFAULT_DB
        database_url = urlunsplit(urlsplit(base)._replace(path="/" + _name(DEFAULT_DB)))
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench.status needs Postgres (DATABASE_URL or --database-url)")
    _log(f"database {database_url} (created now, dropped at the end)")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, str(ROOT))
    create_database(database_url)
    try:
        started = time.perf_counter()
        _log(f"== filling: {events:,} inbox rows, {hosts:,} hosts, {args.providers} providers")
        times = fill(database_url, events, hosts, args.providers)
        total_fill = time.perf_counter() - started
        _log(f"   filled in {total_fill:.0f} s")
        _log("== requests")
        results, extra = measure(args.rounds)
    finally:
        if not args.keep_db:
            drop_database(database_url)
    if not args.no_plans:
        print("## Query plans (EXPLAIN ANALYZE, BUFFERS)\n")
        for label, (query, plan) in extra["plans"].items():
            print(f"### {label}\n\n```sql\n{query}\n```\n\n```\n" + "\n".join(plan) + "\n```\n")
    print(f"Fill: {total_fill:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())}). "
          f"Coverage count at the end of a full sync ({hosts:,} hosts, "
          f"{extra['coverage_rows']:,} changed by events in the window): "
          f"{extra['coverage_ms']:.0f} ms.\n")
    print(table(results, events, hosts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
