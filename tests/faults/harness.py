"""Private service stacks for the fault-injection suite (issue 10).

Every test module gets a stack of its own: a redis-server with AOF
(``appendfsync always``), a Postgres cluster (``initdb`` of the installed
server, run as the ``postgres`` OS user when we are root), gunicorn serving
``project.wsgi:application``, a real ``celery worker`` and ``celery beat`` --
all subprocesses on free ports, pointed at each other by environment. Faults
are injected by signalling *these* processes (by PID or by the process group
each one leads), never anything else on the machine.

The database is read with plain psycopg (short-lived connections, so a
stopped server never leaves the test holding a broken one); nothing here
imports the ORM against the private cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg.rows import dict_row

__all__ = [
    "REPO",
    "PostgresCluster",
    "Proc",
    "RedisServer",
    "Stack",
    "free_port",
    "pg_bindir",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[2]
DB_NAME = "cloudsync"
FINAL_STATUSES = ("processed", "ignored", "failed", "dead")


def free_port() -> int:
    """A TCP port nothing listens on right now (bind to 0, release)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until truthy; exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a service still starting
            last_exc = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:.0f}s (last error: {last_exc!r})")
        time.sleep(interval)


def pg_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    override = os.environ.get("FAULTS_PG_BINDIR")
    if override:
        return Path(override)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
    )
    if found:
        return found[-1].parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise FileNotFoundError("no PostgreSQL server (initdb) installed")


def _pg_user() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as: ``postgres`` when we are root (the
    server refuses to run as root), else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(os.environ.get("FAULTS_PG_OS_USER", "postgres"))
    return entry.pw_uid, entry.pw_gid


def _demote(ids: tuple[int, int] | None) -> Callable[[], None] | None:
    if ids is None:
        return None
    uid, gid = ids

    def run() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return run


_STARTED: list[Proc] = []


@atexit.register
def _kill_leftovers() -> None:
    """An interrupted session (Ctrl-C, a crash) leaves no service running."""
    for proc in _STARTED:
        if proc.alive():
            proc.signal_group(signal.SIGKILL)


class Proc:
    """One long-running subprocess we own: it leads its own process group,
    so a SIGKILL reaches its children (prefork pool, gunicorn workers) too."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log: Path,
        cwd: Path = REPO,
        user: tuple[int, int] | None = None,
    ):
        self.name, self.argv, self.env, self.log, self.cwd, self.user = (
            name, list(argv), env, log, cwd, user,
        )
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        assert not self.alive(), f"{self.name} already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n=== start #{self.starts + 1} {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_demote(self.user),
            )
        self.starts += 1
        _STARTED.append(self)
        return self

    def signal_group(self, sig: int) -> None:
        """Signal the process group this process leads (ours only)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def send(self, sig: int) -> None:
        """Signal the process itself (e.g. the postmaster, which stops its children)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole group, reap the leader."""
        self.signal_group(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Polite stop, SIGKILL after ``timeout``; also sweeps the group."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(sig)
            if self.wait(timeout) is None:
                self.signal_group(signal.SIGKILL)
                self.wait(10)
        self.signal_group(signal.SIGKILL)  # stragglers of the group, if any

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class RedisServer:
    """redis-server with AOF ``appendfsync always`` in its own directory, so a
    SIGKILL + restart on the same directory keeps every acknowledged write."""

    def __init__(self, base: Path):
        self.dir = base / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = Proc(
            "redis",
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--loglevel", "notice"],
            log=base / "logs" / "redis.log",
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        self.proc.start()
        wait_until(lambda: self.client().ping(), 20, 0.05, "redis answers PING")

    def kill(self) -> None:
        self.proc.kill()

    def broker_backlog(self) -> dict[str, int]:
        """Messages anywhere in the broker: kombu's queue lists and unacked
        hash (delivered, not yet acknowledged; ETA retries too), and the
        endpoint's journal (accepted, not yet recorded in the inbox: the
        sweeper puts back one lost between BRPOP and kombu's bookkeeping
        once it is CLOUDSYNC_JOURNAL_RECOVER_SECONDS old)."""
        from sync.queueing import JOURNAL_TIMES

        c = self.client()
        out = {"unacked": int(c.hlen("unacked")), "journal": int(c.zcard(JOURNAL_TIMES))}
        for key in c.scan_iter(match="cloudsync.*"):
            if c.type(key) == b"list":
                out[key.decode(errors="replace")] = int(c.llen(key))
        return out


class PostgresCluster:
    """A private cluster: ``initdb`` + ``postgres`` on a free port, 127.0.0.1
    and a socket directory of its own. Stopping it is a real outage for every
    process connected to it."""

    SETTINGS = (
        "fsync=off", "synchronous_commit=off", "full_page_writes=off",
        "max_connections=100", "shared_buffers=64MB", "log_min_messages=warning",
        "log_connections=off", "log_disconnections=off",
    )

    def __init__(self, base: Path, data: Path | None = None):
        self.base = base
        self.data = data or base / "pg" / "data"
        self.sock = base / "pg" / "sock"
        self.port = free_port()
        self.bindir = pg_bindir()
        self.user = _pg_user()
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sock}"]
        for setting in self.SETTINGS:
            argv += ["-c", setting]
        self.proc = Proc("postgres", argv, log=base / "logs" / "postgres.log", user=self.user)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, *self.user)

    def prepare_dirs(self) -> None:
        for path in (self.base, self.base / "pg", self.sock):
            path.mkdir(parents=True, exist_ok=True)
            self._own(path)

    def initdb(self) -> None:
        """A fresh cluster with a ``cloudsync`` database (trust auth)."""
        self.prepare_dirs()
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, preexec_fn=_demote(self.user), cwd="/",
        )
        self.start()
        with self.connect(dbname="postgres") as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")

    def copy_from(self, template: Path) -> None:
        """Start from a stopped, migrated cluster's data directory (``cp -a``
        keeps owner and modes): a per-module cluster in a second, not ten."""
        self.prepare_dirs()
        subprocess.run(["cp", "-a", str(template), str(self.data)], check=True)

    def connect(self, dbname: str = DB_NAME, timeout: float = 3) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
            autocommit=True, connect_timeout=max(1, int(timeout)), row_factory=dict_row,
        )

    def ready(self) -> bool:
        try:
            with self.connect(dbname="postgres", timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def start(self) -> None:
        self.proc.start()
        wait_until(self.ready, 30, 0.1, "postgres accepts connections")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: SIGINT (sessions terminated, clean shutdown);
        ``immediate``: SIGQUIT (crash-like, recovery on the next start)."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        self.proc.send(sig)
        if self.proc.wait(60) is None:
            self.proc.kill()

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
        with self.connect() as conn:
            conn.execute(sql, params)


@dataclass
class Provider:
    pk: int
    secret: str
    name: str


def _python_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment every service process gets: ours minus test-only
    knobs, plus the private stack's URLs. Production defaults otherwise (no
    DB_CONN_MAX_AGE=0 as the unit tests use: persistent connections are
    part of what an outage breaks)."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "CLOUDSYNC_TEST_")) and k not in (
            "DB_CONN_MAX_AGE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
        )
    }
    env.update({"DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": os.environ.get("FAULTS_LOG_LEVEL", "INFO")})
    # FAULTS_SVC_<NAME>=value reaches the services as <NAME>=value (e.g. a
    # shorter redelivery bound for a quick local run); none by default.
    env.update({k.removeprefix("FAULTS_SVC_"): v for k, v in os.environ.items()
                if k.startswith("FAULTS_SVC_")})
    env.update(extra)
    return env


@dataclass
class Stack:
    """Redis + Postgres + gunicorn + worker + beat of one test module."""

    base: Path
    template: Path | None = None
    web_workers: int = 3
    worker_concurrency: int = 2
    redis: RedisServer = field(init=False)
    pg: PostgresCluster = field(init=False)
    web: Proc = field(init=False)
    worker: Proc = field(init=False)
    beat: Proc = field(init=False)
    web_port: int = field(init=False)

    def __post_init__(self) -> None:
        (self.base / "logs").mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.base)
        self.pg = PostgresCluster(self.base)
        self.web_port = free_port()
        env = self.env
        py = sys.executable
        logs = self.base / "logs"
        self.web = Proc(
            "gunicorn",
            [py, "-m", "gunicorn", "project.wsgi:application", "--bind",
             f"127.0.0.1:{self.web_port}", "--workers", str(self.web_workers), "--worker-class",
             "sync", "--timeout", "60", "--graceful-timeout", "5", "--log-level", "warning"],
            env=env, log=logs / "gunicorn.log",
        )
        self.worker = Proc(
            "worker",
            [py, "-m", "celery", "-A", "project", "worker", "-Q", "cloudsync.events,cloudsync.sync",
             "--without-mingle", "--without-gossip", "-c", str(self.worker_concurrency), "-l", "info", "-n", f"faults-{self.web_port}@%h"],
            env=env, log=logs / "worker.log",
        )
        self.beat = Proc(
            "beat",
            [py, "-m", "celery", "-A", "project", "beat", "-l", "info",
             "--pidfile", str(self.base / "beat.pid"), "-s", str(self.base / "beat-schedule")],
            env=env, log=logs / "beat.log",
        )

    @property
    def env(self) -> dict[str, str]:
        return _python_env({
            "DATABASE_URL": self.pg.url,
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
        })

    # -- lifecycle -----------------------------------------------------------
    def start_storage(self) -> None:
        """Redis and a migrated Postgres (copied from the session template if any)."""
        self.redis.start()
        if self.template is not None:
            self.pg.copy_from(self.template)
            self.pg.start()
        else:
            self.pg.initdb()
            self.migrate()
        # Full syncs are not under test here (and would call an unreachable
        # keystone): only the event side's schedules, e.g. a sweeper, stay on.
        self.pg.execute(
            "UPDATE django_celery_beat_periodictask SET enabled = false "
            "WHERE task = 'sync.tasks.sync_all'"
        )

    def migrate(self) -> None:
        self.manage("migrate", "--noinput")

    def manage(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start_web(self, wait: bool = True) -> None:
        self.web.start()
        if wait:
            self.wait_web()

    def wait_web(self) -> None:
        wait_until(self.web_ready, 60, 0.2, "gunicorn answers")

    def web_ready(self) -> bool:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=2)
        try:
            conn.request("GET", "/cloud-sync/provider/0/")
            return conn.getresponse().status in (404, 405)
        finally:
            conn.close()

    def start_worker(self, timeout: float = 90, wait: bool = True) -> None:
        """Start the worker; return once it logged ``ready``."""
        before = self.worker.log_text().count(" ready.")
        self.worker.start()
        if wait:
            self.wait_worker(before, timeout)

    def wait_worker(self, before: int = 0, timeout: float = 90) -> None:
        wait_until(
            lambda: self.worker.log_text().count(" ready.") > before or not self.worker.alive(),
            timeout, 0.2, "celery worker ready",
        )
        if not self.worker.alive():
            raise RuntimeError(f"worker died at start:\n{self.worker.tail()}")

    def start_beat(self, wait: bool = True) -> None:
        self.beat.start()
        if wait:
            self.wait_beat()

    def wait_beat(self) -> None:
        wait_until(lambda: "beat: Starting" in self.beat.log_text() or not self.beat.alive(),
                   60, 0.2, "celery beat started")

    def stop_worker(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM to the main process: it finishes running
        tasks and gives unacked messages back)."""
        self.worker.send(signal.SIGTERM)
        if self.worker.wait(timeout) is None:
            self.worker.kill()
        self.worker.signal_group(signal.SIGKILL)

    def start_all(self) -> None:
        """Storage first, then web, worker and beat side by side."""
        self.start_storage()
        self.start_web(wait=False)
        self.start_worker(wait=False)
        self.start_beat(wait=False)
        self.wait_web()
        self.wait_worker()
        self.wait_beat()

    def close(self) -> None:
        for proc in (self.beat, self.worker, self.web):
            proc.stop(timeout=15)
        self.pg.stop("immediate") if self.pg.proc.alive() else None
        self.pg.proc.stop()
        self.redis.proc.stop()

    # -- fixtures of the scenario -----------------------------------------
    def add_provider(self, name: str, driver: str = "openstack") -> Provider:
        """A provider created by the product's own management command."""
        config = ('{"auth_url": "http://keystone.invalid:5000/v3", "username": "u", '
                  '"password": "p", "project_name": "admin"}')
        out = self.manage("cloudsync_add_provider", name, "--driver", driver, "--config", config)
        pk = int(re.search(r"provider id:\s*(\d+)", out).group(1))
        secret = re.search(r"secret:\s*(\S+)", out).group(1)
        return Provider(pk, secret, name)

    def settings_value(self, expression: str) -> Any:
        """A value of the project's settings *as the services see them*
        (same env), e.g. ``CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']``."""
        code = (
            "import json, django; django.setup(); from django.conf import settings; "
            f"print(json.dumps(settings.{expression}, default=str))"
        )
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60, check=True)
        import json

        return json.loads(done.stdout.strip().splitlines()[-1])

    def journal_put_back(self) -> int:
        """How many accepted messages the sweeper put back from the journal
        (lost between BRPOP and kombu's bookkeeping), read from the sweep
        results in the worker's log."""
        text = self.worker.log.read_text(errors="replace") if self.worker.log.exists() else ""
        return sum(int(n) for n in re.findall(r"'messages_put_back': (\d+)", text))

    def logs_summary(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log}) ---\n{p.tail(25)}" for p in (self.worker, self.web, self.beat)
        )


@contextlib.contextmanager
def stack_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory the Postgres OS user may enter; removed after
    (kept with FAULTS_KEEP_TMP=1, for reading the logs)."""
    base = Path(tempfile.mkdtemp(prefix=f"cloudsync-faults-{prefix}-"))
    user = _pg_user()
    if user is not None:
        os.chown(base, *user)
    try:
        yield base
    finally:
        if os.environ.get("FAULTS_KEEP_TMP"):
            print(f"[faults] kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
