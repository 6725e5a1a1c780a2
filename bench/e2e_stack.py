"""The private stack of ``bench/e2e.py``: redis-server, a throwaway Postgres
database, worker processes and their RSS, and the benchmark's own queries.

Everything here is started by the benchmark and stopped by PID (or by the
process group it created); nothing touches the machine's shared services
beyond creating and dropping one database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "cloudsync.events,cloudsync.sync"
FINAL = ("processed", "ignored", "failed", "dead")
RSS_SECONDS = 0.5


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError, psycopg.Error):
            pass
        time.sleep(every)
    raise BenchError(f"timed out after {timeout:g} s waiting for {what}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- processes ---------------------------------------------------------------


def rss_kb(pid: int) -> int:
    """VmRSS of a process plus its direct children (the worker's pool), in kB."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    """Samples a process tree's RSS every 0.5 s: (monotonic time, kB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            kb = rss_kb(self.pid)
            if kb:
                self.samples.append((time.monotonic(), kb))
            if self._stop_event.wait(RSS_SECONDS):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def peak_mb(self, start: float = 0.0, end: float = float("inf")) -> float:
        values = [kb for t, kb in self.samples if start <= t <= end]
        return max(values, default=0) / 1024


class Worker:
    """One ``celery worker`` in a process group of its own."""

    def __init__(self, env: dict[str, str], logfile: Path, concurrency: int) -> None:
        self.logfile = logfile
        cmd = [
            sys.executable, "-m", "celery", "-A", "project", "worker",
            "-Q", QUEUES, "--without-mingle", "--without-gossip", "-c", str(concurrency),
            "-l", "warning",
            "--include", "bench.noop_tasks,bench.worker_probe",
        ]  # fmt: skip
        self._log = open(logfile, "ab")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        _running.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"the worker exited with status {self.proc.returncode}; log tail "
                f"({self.logfile}):\n{tail(self.logfile)}"
            )

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM (warm shutdown: running batches finish), then after
        ``grace`` seconds SIGKILL of its process group."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"worker {self.pid} still running {grace:g} s after SIGTERM; killing its group")
            except ProcessLookupError:
                pass
        try:  # pool processes left behind by a crash
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()
        if self in _running:
            _running.remove(self)


_running: list[Worker] = []


def running_workers() -> list[Worker]:
    """Workers started and not yet stopped (for cleanup on any exit path)."""
    return list(_running)


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if not binary:
        raise BenchError("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        wait_for(lambda: bool(client.ping()), 10, "redis-server to answer PING")
    except BenchError:
        proc.kill()
        raise
    return proc, url


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- database ----------------------------------------------------------------


def admin_dsn(base: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))


def database_dsn(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


def create_database(base: str, name: str) -> None:
    with psycopg.connect(admin_dsn(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base: str, name: str) -> None:
    with psycopg.connect(admin_dsn(base), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Database:
    """The benchmark's own statements on its database (outside the worker)."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.own = 0  # statements (= transactions, autocommit) we ran on this database
        self._poll: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)

    def poll_conn(self) -> psycopg.Connection:
        if self._poll is None:
            self._poll = self._connect()
        return self._poll

    def close_poll(self) -> None:
        if self._poll is not None:
            self._poll.close()
            self._poll = None

    def final_count(self, provider_id: int) -> int:
        self.own += 1
        row = self.poll_conn().execute(
            "SELECT count(*) FROM sync_event WHERE cloudprovider_id = %s AND status = ANY(%s)",
            (provider_id, list(FINAL)),
        ).fetchone()
        return int(row[0])

    def statuses(self, provider_id: int) -> dict[str, int]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM sync_event WHERE cloudprovider_id = %s "
                "GROUP BY status", (provider_id,),
            ).fetchall()  # fmt: skip
        return {status: int(n) for status, n in rows}

    def errors(self, provider_id: int, limit: int = 5) -> list[tuple[str, int]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT left(error, 300), count(*) FROM sync_event WHERE cloudprovider_id = %s "
                "AND status IN ('failed', 'dead') GROUP BY 1 ORDER BY 2 DESC LIMIT %s",
                (provider_id, limit),
            ).fetchall()
        return [(e, int(n)) for e, n in rows]

    def lags(self, provider_id: int) -> dict[str, float]:
        """processed_at - received_at (s) of every final event, by dedup key."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT key, extract(epoch FROM processed_at - received_at)::float8 "
                "FROM sync_event WHERE cloudprovider_id = %s AND status = ANY(%s) "
                "AND processed_at IS NOT NULL", (provider_id, list(FINAL)),
            ).fetchall()  # fmt: skip
        return {key: float(lag) for key, lag in rows}

    def reset(self) -> None:
        """Empty every table of the sync app (inbox, inventory, runs, providers)."""
        with self._connect() as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'sync\\_%'").fetchall()]  # fmt: skip
            if tables:
                conn.execute(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )

    def quiesce(self, timeout: float = 10.0) -> None:
        """Wait until no other session is connected, so every backend has
        flushed its statistics (a backend flushes when it exits)."""
        def alone() -> bool:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (self.name,),
                ).fetchone()  # fmt: skip
            self.own += 1
            return int(row[0]) == 0

        wait_for(alone, timeout, "the worker's database sessions to close", every=0.1)

    def stats(self) -> tuple[int, int]:
        """(committed transactions, rows inserted + updated + deleted)."""
        with self._connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = %s", (self.name,),
            ).fetchone()  # fmt: skip
        self.own += 2  # not in this snapshot: flushed when this session ends
        return int(row[0]), int(row[1])
