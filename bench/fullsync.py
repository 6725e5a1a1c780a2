"""Full sync of an OpenStack cloud: time, peak RSS and SQL queries (DESIGN §8).

    python -m bench.fullsync [--sizes 1k,10k,100k] [--profile DIR] [--json FILE] [--split]

For each size: a fake OpenStack (``bench.fake_cloud_process``, its own
process) with N servers, one port each, ~20 flavors, N/100 images (at least
3) and 50 projects (+ the admin project); an empty inventory and a provider
with the ``openstack.ocata`` driver pointing at it; then two measurements,
each in a fresh Python process so each peak RSS is its own:

* full sync from empty: ``runs.claim_run`` + ``runs.execute_run`` (no Celery;
  the child tunes its garbage collector as a worker process does at start,
  ``sync.gc_tuning``);
* no-change re-sync: the same again, nothing changed in the cloud.

Queries are counted with ``connection.execute_wrapper`` (a bulk insert or
update is one query); rows written are the summed rowcounts of INSERT, COPY, UPDATE
and DELETE, and "inventory rows written" those of statements on the
inventory tables (``sync_cloud*``; the rest is the run's own bookkeeping:
its SyncRun row, the provider's status and listing floor). Objects = every synced row: servers + ports + flavors + images +
projects. Phases: "listing" is the time spent inside the driver's snapshot
generator (HTTP, JSON, mapping to Changes), "db" the time inside SQL
statements, the rest of the run is Python in apply/reconcile.

``--split`` then compares split and unsplit full syncs run by a real
Celery worker (``-c 2``, prefork, a private redis-server as broker and
result backend): for each mode, an emptied inventory (the sync runs kept, so
the split decision has a previous run to count), a full sync from empty and
a no-change re-sync, each queued with ``runs.start_run`` and timed from the
run's ``started_at`` to its ``finished_at``, with the machine's CPU use
meanwhile (``/proc/stat``: every process, so other load shows too). Unsplit:
the worker started with
``CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS=0``; split: with ``1``. The speed-up is
unsplit time / split time.

Postgres: a throwaway database ``cloudsync_bench_fullsync`` on the server of
DATABASE_URL (default ``postgres://postgres@127.0.0.1:5432``), or exactly
``--database-url``; created, migrated and dropped at the end (``--keep-db``
keeps it). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/cloudsync_bench_fullsync"
PROVIDER = "bench-fullsync"


# -- helpers -----------------------------------------------------------------------
def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    return int(float(text) * factor)


def label(n: int) -> str:
    if n % 1000 == 0 and n >= 1000:
        return f"{n // 1000}k"
    return str(n)


def _child_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="project.settings",
        DJANGO_DEBUG="0",  # DEBUG would keep every query in connection.queries
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _admin_dsn(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    return admin, name


def _admin_exec(database_url: str, *statements: str) -> None:
    import psycopg

    admin, _ = _admin_dsn(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def create_database(database_url: str) -> None:
    _, name = _admin_dsn(database_url)
    _admin_exec(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=_child_env(database_url), check=True,
    )


def drop_database(database_url: str) -> None:
    _, name = _admin_dsn(database_url)
    _admin_exec(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(database_url: str, *args: str, redis_url: str | None = None) -> dict[str, Any]:
    """Run ``python -m bench.fullsync --child ...``; its last stdout line is JSON."""
    env = _child_env(database_url)
    if redis_url:
        env["REDIS_URL"] = redis_url
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.fullsync", "--child", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class FakeCloudProcess:
    def __init__(self, servers: int) -> None:
        self.servers = servers
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> FakeCloudProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_cloud_process", "--servers", str(self.servers)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit("the fake cloud process did not start")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()


# -- child side (inside Django) ---------------------------------------------------------
INVENTORY_TABLE = re.compile(
    r'(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+"?sync_cloud(?!provider)', re.I)


class QueryCounter:
    """execute_wrapper: statements, rows written and time per statement type."""

    def __init__(self) -> None:
        self.queries = 0
        self.by_type: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.inventory_rows = 0  # written to sync_cloud* tables
        self.seconds = 0.0
        self.by_statement: dict[str, list] = {}  # statement head -> [count, seconds]

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper() if sql else "?"
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - start
            self.seconds += took
            self.queries += 1
            entry = self.by_statement.setdefault(" ".join(sql.split())[:90], [0, 0.0])
            entry[0] += 1
            entry[1] += took
            self.by_type[verb] = self.by_type.get(verb, 0) + 1
            if verb in ("INSERT", "UPDATE", "DELETE", "COPY"):
                rowcount = getattr(context["cursor"], "rowcount", -1)
                if rowcount and rowcount > 0:
                    self.rows[verb] = self.rows.get(verb, 0) + rowcount
                    if INVENTORY_TABLE.match(sql.lstrip()):
                        self.inventory_rows += rowcount


def child_prepare(client_config: dict[str, Any]) -> dict[str, Any]:
    """Empty inventory, one provider pointing at the fake."""
    import django

    django.setup()
    from django.db import connection

    from sync.models import CloudProvider

    tables = [
        "sync_cloudhostip", "sync_cloudport", "sync_cloudhost", "sync_cloudimage",
        "sync_cloudflavor", "sync_cloudproject", "sync_syncrun",
    ]
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        wanted = [t for t in tables if t in existing]
        cursor.execute(f"TRUNCATE {', '.join(wanted)} RESTART IDENTITY CASCADE")
    CloudProvider.objects.filter(name=PROVIDER).delete()
    provider = CloudProvider(
        name=PROVIDER, cloud_sync_enabled=True, cloud_sync_driver="openstack.ocata",
        client_config=client_config,
    )
    provider.full_clean()
    provider.save()
    return {"provider_id": provider.pk}


def child_empty_inventory() -> dict[str, Any]:
    """Empty inventory; the provider and its sync runs stay (a split run
    needs the previous run's counts)."""
    import django

    django.setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sync_cloudhostip, sync_cloudport, sync_cloudhost, sync_cloudimage, "
                       "sync_cloudflavor, sync_cloudproject RESTART IDENTITY CASCADE")
    return {}


def _cpu_times() -> tuple[int, int]:
    """Machine-wide (busy, total) CPU jiffies from /proc/stat (0, 0 elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def child_worker_sync(provider_id: int) -> dict[str, Any]:
    """Queue a full sync for the worker (once it answers a ping) and wait for it."""
    import django

    django.setup()
    from project.celery import app
    from sync import runs
    from sync.models import CloudProvider, SyncRun

    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not answer a ping within 60 s")
    busy_before, total_before = _cpu_times()
    run = runs.start_run(CloudProvider.objects.get(pk=provider_id), "full", triggered_by="bench")
    while True:
        run = SyncRun.objects.get(pk=run.pk)
        if run.status != "running":
            break
        time.sleep(0.05)
    busy_after, total_after = _cpu_times()
    counts = run.counts or {}
    return {
        "status": run.status, "error": run.error,
        "seconds": (run.finished_at - run.started_at).total_seconds(),
        "split": run.worker.startswith(runs.SPLIT),
        # the machine's CPU use while the run ran (all processes: worker,
        # Postgres, the fake cloud, anything else), as a share of all cores
        "cpu_busy": (busy_after - busy_before) / max(1, total_after - total_before),
        "parts": run.parts,
        "objects": sum(n for per_kind in counts.values() for n in per_kind.values()),
    }


def child_analyze() -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {}


def child_sync(provider_id: int, profile: str | None) -> dict[str, Any]:
    import django

    django.setup()
    from sync.gc_tuning import tune

    tune()  # as a worker process starts (project.celery)
    from django.db import connection

    from sync import reconcile, runs
    from sync.drivers.openstack import OpenStackDriver
    from sync.models import CloudProvider, SyncRun

    provider = CloudProvider.objects.get(pk=provider_id)
    connection.ensure_connection()
    # A worker process has the driver's modules (openstacksdk: ~0.5 s to
    # import) loaded once its first sync ran; the run is timed without that.
    import sync.drivers.openstack.inventory  # noqa: F401

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    phases = {"listing": 0.0, "deletions": 0.0}
    original_list = OpenStackDriver.list_inventory

    def timed(changes):
        iterator = iter(changes)
        while True:
            start = time.perf_counter()
            try:
                change = next(iterator)
            except StopIteration:
                phases["listing"] += time.perf_counter() - start
                return
            phases["listing"] += time.perf_counter() - start
            yield change

    def list_inventory(self, config):
        start = time.perf_counter()
        snap = original_list(self, config)
        phases["listing"] += time.perf_counter() - start
        return dataclasses.replace(snap, changes=timed(snap.changes))

    original_deletions = reconcile._deletions

    def deletions(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original_deletions(*args, **kwargs)
        finally:
            phases["deletions"] += time.perf_counter() - start

    OpenStackDriver.list_inventory = list_inventory
    reconcile._deletions = deletions

    counter = QueryCounter()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    start, cpu_start = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(counter):
        run = runs.claim_run(provider, "full", triggered_by="bench")
        if profiler:
            profiler.enable()
        run = runs.execute_run(run.pk)
        if profiler:
            profiler.disable()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if profiler:
        profiler.dump_stats(profile)
    run = SyncRun.objects.get(pk=run.pk)
    counts = run.counts or {}
    objects = sum(n for per_kind in counts.values() for n in per_kind.values())
    return {
        "status": run.status,
        "error": run.error,
        "seconds": seconds,
        # This process's CPU time (not the database's, nor the fake cloud's):
        # steadier than the wall clock on a shared machine, for A/B runs.
        "cpu": cpu,
        "listing": phases["listing"],
        "deletions": phases["deletions"],
        "db": counter.seconds,
        "queries": counter.queries,
        "by_type": counter.by_type,
        "rows_written": counter.rows,
        "inventory_rows_written": counter.inventory_rows,
        "top_sql": sorted(
            ([round(t, 3), n, head] for head, (n, t) in counter.by_statement.items()), reverse=True
        )[:8],
        "counts": counts,
        "objects": objects,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before / 1024,
    }


# -- orchestration ---------------------------------------------------------------------
def measure(
    database_url: str, servers: int, profile_dir: str | None, verbose: bool = False,
    split: Path | None = None,
) -> dict[str, Any]:
    print(f"\n== {label(servers)} servers: seeding the fake cloud ...", file=sys.stderr, flush=True)
    with FakeCloudProcess(servers) as fake:
        print(f"   seeded in {fake.info['seconds']} s: {fake.info['counts']}", file=sys.stderr, flush=True)
        config = json.dumps(fake.info["client_config"])
        provider_id = run_child(database_url, "prepare", "--config", config)["provider_id"]
        out: dict[str, Any] = {"servers": servers, "fake": fake.info["counts"]}
        for name in ("full", "resync"):
            if name == "resync":
                run_child(database_url, "analyze")  # what autovacuum would do after a bulk load
            args = ["sync", "--provider-id", str(provider_id)]
            if profile_dir:
                args += ["--profile-out", str(Path(profile_dir) / f"{label(servers)}-{name}.pstats")]
            result = run_child(database_url, *args)
            if result["status"] != "succeeded":
                raise SystemExit(f"{name} sync of {servers} servers: {result['status']} {result['error']}")
            print(f"   {name}: {_summary(result)}", file=sys.stderr, flush=True)
            if verbose:
                for seconds, count, head in result["top_sql"]:
                    print(f"      {seconds:7.3f} s {count:4d}x {head}", file=sys.stderr)
            out[name] = result
        if split is not None:
            out["worker"] = measure_split(database_url, servers, provider_id, split)
    return out


def measure_split(database_url: str, servers: int, provider_id: int, tmp: Path) -> dict[str, Any]:
    """Unsplit and split full syncs (from empty, then a no-change re-sync)
    through a real worker of 2 processes; see the module doc."""
    from bench.e2e_stack import Worker, start_redis, stop_process

    redis_proc, redis_url = start_redis(tmp)
    out: dict[str, Any] = {}
    try:
        for mode, threshold in (("unsplit", "0"), ("split", "1")):
            run_child(database_url, "empty-inventory")
            env = {**_child_env(database_url), "REDIS_URL": redis_url,
                   "CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS": threshold}
            env.pop("CELERY_BROKER_URL", None)
            env.pop("CELERY_RESULT_BACKEND", None)
            worker = Worker(env, tmp / f"worker-{mode}.log", concurrency=2)
            try:
                results = {}
                for name in ("full", "resync"):
                    if name == "resync":
                        run_child(database_url, "analyze")
                    result = run_child(database_url, "worker-sync", "--provider-id",
                                       str(provider_id), redis_url=redis_url)
                    if result["status"] != "succeeded" or result["split"] != (mode == "split"):
                        raise SystemExit(f"{mode} {name} sync of {servers} servers: {result}")
                    print(f"   worker, {mode} {name}: {result['seconds']:.2f} s, "
                          f"objects {result['objects']}, machine CPU busy "
                          f"{result['cpu_busy']:.0%} of {os.cpu_count()} cores"
                          + (f", parts {result['parts']}" if result["parts"] else ""),
                          file=sys.stderr, flush=True)
                    results[name] = result
            finally:
                worker.stop()
            out[mode] = results
    finally:
        stop_process(redis_proc)
    return out


def _summary(r: dict[str, Any]) -> str:
    return (
        f"{r['seconds']:.2f} s (listing {r['listing']:.2f}, db {r['db']:.2f}, "
        f"deletions {r['deletions']:.2f}; process CPU {r.get('cpu', 0):.2f}), "
        f"{r['maxrss_mb']:.0f} MB, {r['queries']} queries "
        f"{r['by_type']}, rows written {r['rows_written']} "
        f"(inventory {r.get('inventory_rows_written', '?')}), objects {r['objects']}"
    )


def per_1k(r: dict[str, Any]) -> float:
    return 1000 * r["queries"] / max(1, r["objects"])


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| servers | objects | full sync (s) | peak RSS (MB) | queries/1k obj "
        "| re-sync (s) | peak RSS (MB) | queries/1k obj | re-sync rows written "
        "| of them inventory rows |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        f, r = res["full"], res["resync"]
        lines.append(
            f"| {label(res['servers'])} | {f['objects']:,} | {f['seconds']:.1f} | {f['maxrss_mb']:.0f} "
            f"| {per_1k(f):.1f} | {r['seconds']:.1f} | {r['maxrss_mb']:.0f} | {per_1k(r):.1f} "
            f"| {sum(r['rows_written'].values()):,} | {r['inventory_rows_written']:,} |"
        )
    lines += [
        "",
        "| servers | run | total (s) | listing (s) | SQL (s) | other Python (s) | deletions (s) "
        "| RSS before sync (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for name in ("full", "resync"):
            x = res[name]
            other = x["seconds"] - x["listing"] - x["db"]
            lines.append(
                f"| {label(res['servers'])} | {name} | {x['seconds']:.1f} | {x['listing']:.1f} "
                f"| {x['db']:.1f} | {other:.1f} | {x['deletions']:.2f} | {x['rss_before_mb']:.0f} |"
            )
    split = [res for res in results if "worker" in res]
    if split:
        lines += [
            "",
            "| servers | worker | full sync unsplit (s) | split (s) | speed-up "
            "| re-sync unsplit (s) | split (s) | speed-up | machine CPU busy, unsplit → split |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for res in split:
            u, p = res["worker"]["unsplit"], res["worker"]["split"]
            lines.append(
                f"| {label(res['servers'])} | 2 processes | {u['full']['seconds']:.1f} "
                f"| {p['full']['seconds']:.1f} | {u['full']['seconds'] / p['full']['seconds']:.2f}x "
                f"| {u['resync']['seconds']:.1f} | {p['resync']['seconds']:.1f} "
                f"| {u['resync']['seconds'] / p['resync']['seconds']:.2f}x "
                f"| full {u['full'].get('cpu_busy', 0):.0%} → {p['full'].get('cpu_busy', 0):.0%}, "
                f"re-sync {u['resync'].get('cpu_busy', 0):.0%} → {p['resync'].get('cpu_busy', 0):.0%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1k,10k,100k", help="servers per run, e.g. 1k,10k,100k")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--profile", metavar="DIR", help="cProfile each sync into DIR/<size>-<run>.pstats")
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="the slowest SQL statements")
    parser.add_argument("--split", action="store_true",
                        help="also compare split and unsplit syncs run by a worker of 2 processes")
    # internal: the measured child processes
    parser.add_argument("--child", choices=["prepare", "analyze", "sync", "empty-inventory",
                                            "worker-sync"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--provider-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "prepare":
            out = child_prepare(json.loads(args.config))
        elif args.child == "analyze":
            out = child_analyze()
        elif args.child == "empty-inventory":
            out = child_empty_inventory()
        elif args.child == "worker-sync":
            out = child_worker_sync(args.provider_id)
        else:
            out = child_sync(args.provider_id, args.profile_out)
        print(json.dumps(out))
        return 0

    database_url = args.database_url
    if not database_url:  # DATABASE_URL's server, but always our own throwaway database
        base = os.environ.get("DATABASE_URL") or DEFAULT_DB
        database_url = urlunsplit(urlsplit(base)._replace(path="/" + DEFAULT_DB.rsplit("/", 1)[1]))
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench.fullsync needs Postgres (DATABASE_URL or --database-url)")
    print(f"database {database_url} (created now, dropped at the end)", file=sys.stderr)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    create_database(database_url)
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-fullsync-")) if args.split else None
    try:
        for servers in sizes:
            results.append(measure(database_url, servers, args.profile, args.verbose, tmp))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_db:
            drop_database(database_url)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
