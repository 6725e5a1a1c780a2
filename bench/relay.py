"""cloudsync-relay throughput: a preloaded bus drained into the endpoint.

    python -m bench.relay [--notifications 10000] [--batch-size 50] [--concurrency 4]

Everything runs locally and is removed at the end: a throwaway SQLite
database with one provider (noop driver: the endpoint only authenticates and
queues, no worker runs), a private ``redis-server`` on a free port, gunicorn
``project.wsgi`` (3 sync workers, ``bench.settings``) on a free port, and on
the RabbitMQ at ``--rabbit`` exchanges, topics and a pool named for this run
(deleted afterwards).

First 300 POSTs warm the endpoint up (every gunicorn worker loaded).
Per variant: the relay's pool queue is declared (the relay started once and
stopped), N Nova versioned notifications (``tests.faults.events.nova_stream``,
upstream samples, ~2 KB each) are published with a real
``oslo_messaging.Notifier`` while no relay runs, then ``python -m
cloudsync_relay`` is started and timed from its start-up line (imports
done) until its health line (every 0.1 s) counts N relayed, i.e. answered
202. Afterwards the Redis queue must hold
exactly N notifications (bodies decoded and counted) and the pool queue none.

Variants: the relay without batching (``batch_size=1``) and with batches
(``--batch-size``), both with ``--concurrency`` POSTs in flight; the anchor
is a bare POST loop: the same N notifications, already in memory, POSTed one
per request by ``--concurrency`` threads with a kept-alive ``requests``
session (no bus). Prints a Markdown table on stdout, progress on stderr.
Never part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/relay.py` as well as `python -m bench.relay`
    sys.path.insert(0, str(ROOT))

from bench.e2e_stack import BenchError, log, start_redis, stop_process, wait_for  # noqa: E402
from bench.ingest import django_env, free_port, prepare_database, start_gunicorn  # noqa: E402
from bench.ingest import stop as stop_gunicorn  # noqa: E402

RELAY_DIR = ROOT / "relay"
QUEUE = "cloudsync.events"
RELAYED = re.compile(r"since start relayed (\d+),")


@dataclass
class Run:
    variant: str
    notifications: int
    seconds: float
    posts: int

    @property
    def rate(self) -> float:
        return self.notifications / self.seconds


def queued_notifications(client: redis.Redis) -> tuple[int, int]:
    """(bodies, notifications) waiting in the endpoint's queue."""
    bodies = client.lrange(QUEUE, 0, -1)
    count = 0
    for raw in bodies:
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        body = json.loads(kwargs["body"])
        count += len(body) if isinstance(body, list) else 1
    return len(bodies), count


class Stack:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        from tests.faults.events import nova_stream
        from tests.rabbit import RABBIT_URL, Bus, rabbit_answers

        if not rabbit_answers():
            raise BenchError(f"RabbitMQ does not answer at {RABBIT_URL}")
        self.args, self.tmp = args, tmp
        self.rabbit_url = RABBIT_URL
        self.bus = Bus()
        self.redis_proc, self.redis_url = start_redis(tmp)
        self.redis = redis.Redis.from_url(self.redis_url)
        env = django_env(f"sqlite:///{tmp / 'bench.sqlite3'}", self.redis_url)
        self.provider_id, self.secret = prepare_database(env)
        self.port = free_port()
        self.gunicorn = start_gunicorn(env, self.port, 3, tmp / "gunicorn.log")
        self.url = f"http://127.0.0.1:{self.port}/cloud-sync/provider/{self.provider_id}/"
        log(f"generating {args.notifications} notifications")
        self.messages = [m.message for m in nova_stream(args.notifications, 2000, self.bus.tag)]
        self.notifier = self.bus.notifier("nova", "nova-compute:compute", "versioned_notifications")

    def close(self) -> None:
        stop_gunicorn(self.gunicorn)
        stop_process(self.redis_proc)
        self.bus.cleanup()

    def relay_env(self, pool: str, batch_size: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSYNC_RELAY_")}
        env.update(
            PYTHONPATH=str(RELAY_DIR),
            CLOUDSYNC_RELAY_URL=self.url,
            CLOUDSYNC_RELAY_SECRET=self.secret,
            CLOUDSYNC_RELAY_TRANSPORT_URL=self.rabbit_url,
            CLOUDSYNC_RELAY_TOPICS=",".join(self.bus.topics),
            CLOUDSYNC_RELAY_EXCHANGES=",".join(self.bus.exchanges),
            CLOUDSYNC_RELAY_POOL=pool,
            CLOUDSYNC_RELAY_BATCH_SIZE=str(batch_size),
            CLOUDSYNC_RELAY_CONCURRENCY=str(self.args.concurrency),
            CLOUDSYNC_RELAY_HEALTH_INTERVAL="0.1",
        )
        return env

    def start_relay(self, env: dict[str, str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "cloudsync_relay"], env=env, cwd=RELAY_DIR,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def relay(self, variant: str, batch_size: int) -> Run:
        n = len(self.messages)
        pool = self.bus.pool(f"bench{batch_size}")
        env = self.relay_env(pool, batch_size)
        log_path = self.tmp / f"relay-{batch_size}.log"
        # Declare the pool's queue (and its bindings) the way the relay does.
        proc = self.start_relay(env, log_path)
        wait_for(lambda: self.bus.queue_depth(pool) is not None, 30, "the relay's queue")
        stop_process(proc)
        self.redis.delete(QUEUE)
        log(f"{variant}: publishing {n} notifications")
        start = time.monotonic()
        for message in self.messages:
            self.notifier.info({}, message["event_type"], message["payload"])
        log(f"{variant}: published in {time.monotonic() - start:.1f} s; relaying")
        wait_for(lambda: (self.bus.queue_depth(pool) or (0,))[0] >= n, 30, "the preload")
        log_path.write_bytes(b"")
        proc = self.start_relay(env, log_path)
        # The clock starts when the relay has loaded (its "relaying ..." line,
        # logged just before it connects and consumes): interpreter and
        # oslo.messaging imports (~1 s) are not relaying.
        wait_for(lambda: b" relaying " in log_path.read_bytes() or proc.poll() is not None,
                 60, "the relay to start", every=0.005)  # fmt: skip
        start = time.monotonic()

        def relayed() -> int:
            found = RELAYED.findall(log_path.read_text(errors="replace"))
            return int(found[-1]) if found else 0

        try:
            wait_for(lambda: relayed() >= n or proc.poll() is not None, self.args.timeout,
                     f"{n} notifications relayed", every=0.02)  # fmt: skip
        finally:
            seconds = time.monotonic() - start
            stop_process(proc)
        if relayed() != n:
            raise BenchError(
                f"{variant}: relayed {relayed()} of {n}:\n{log_path.read_text()[-3000:]}"
            )
        bodies, queued = queued_notifications(self.redis)
        if queued != n:
            raise BenchError(f"{variant}: {queued} notifications in Redis, expected {n}")
        if (self.bus.queue_depth(pool) or (0,))[0] != 0:
            raise BenchError(f"{variant}: notifications left on the bus")
        self.redis.delete(QUEUE)
        return Run(variant, n, seconds, bodies)

    def warm_up(self) -> None:
        """Every gunicorn worker loaded and its provider cached before timing."""
        session = requests.Session()
        for _ in range(300):
            response = session.post(self.url, data=b"{}", timeout=10,
                                    headers={"Authorization": f"Bearer {self.secret}"})  # fmt: skip
            if response.status_code != 202:
                raise BenchError(f"warm-up: HTTP {response.status_code} {response.text[:200]}")
        self.redis.delete(QUEUE, "cloudsync.journal", "cloudsync.journal.at")

    def bare_loop(self) -> Run:
        """The anchor: the same notifications POSTed one per request, no bus."""
        from cloudsync_relay.notification import encode, to_body

        bodies = [encode(to_body({}, m)) for m in self.messages]
        self.redis.delete(QUEUE)
        threads = self.args.concurrency
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {self.secret}",
                                "Content-Type": "application/json"})  # fmt: skip
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
        errors: list[int] = []

        def post(chunk: list[bytes]) -> None:
            for body in chunk:
                status = session.post(self.url, data=body, timeout=10).status_code
                if status != 202:
                    errors.append(status)

        chunks = [bodies[i::threads] for i in range(threads)]
        workers = [threading.Thread(target=post, args=(c,)) for c in chunks]
        start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        seconds = time.monotonic() - start
        if errors:
            raise BenchError(f"bare POST loop: {len(errors)} answers not 202, e.g. {errors[0]}")
        posts, queued = queued_notifications(self.redis)
        if queued != len(bodies):
            raise BenchError(f"bare POST loop: {queued} notifications in Redis")
        self.redis.delete(QUEUE)
        return Run(f"bare POST loop ({threads} threads, 1 notification per POST, no bus)",
                   len(bodies), seconds, posts)  # fmt: skip


def table(runs: list[Run], anchor: Run) -> str:
    rows = [
        "| variant | notifications | seconds | notifications/s | POSTs | × bare POST loop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        rows.append(
            f"| {run.variant} | {run.notifications:,} | {run.seconds:.1f} | {run.rate:,.0f} | "
            f"{run.posts:,} | {run.rate / anchor.rate:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(RELAY_DIR))
    import warnings

    warnings.filterwarnings("ignore", message=".*[Ee]ventlet.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    tmp = Path(tempfile.mkdtemp(prefix="cs-bench-relay-"))
    stack = None
    try:
        stack = Stack(args, tmp)
        stack.warm_up()
        anchor = stack.bare_loop()
        log(f"bare POST loop: {anchor.rate:,.0f}/s")
        runs = [anchor]
        for variant, size in (
            ("relay, no batching (batch_size=1)", 1),
            (f"relay, batches (batch_size={args.batch_size})", args.batch_size),
        ):
            run = stack.relay(f"{variant}, {args.concurrency} POSTs in flight", size)
            log(f"{run.variant}: {run.rate:,.0f}/s")
            runs.append(run)
        print(table(runs, anchor))
        return 0
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.close()
        if not args.keep_tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")


if __name__ == "__main__":
    raise SystemExit(main())
