"""Throughput of the webhook endpoint against a bare Django view (DESIGN §6).

    python -m bench.ingest [--duration 20] [--warmup 3] [--rounds 1]

Starts everything itself: a throwaway SQLite database with one provider (noop
driver), gunicorn ``project.wsgi`` with 3 sync workers on a free port of
127.0.0.1 (``bench.settings``: the production settings and middleware, plus a
bare view that answers 202 at ``/bench/bare/<id>/``), and ``wrk`` with 32
connections POSTing a ~120-byte JSON event with Bearer auth. Each variant gets
a warm-up, then a measured run. Accepted events/s counts 202 responses only;
afterwards the Redis queue must have grown by that many messages (plus at most
the requests still in flight when wrk stopped: it drops them unanswered, the
server still queues them).

Redis: its own database (``--redis-url``, default db 7; db 0 is refused, the
test suite uses 8-15), flushed before and after. Exits non-zero on any error,
any non-202 answer or a queue count that does not match. Needs ``wrk``
(``apt-get install wrk``). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "cloudsync.events"
# A realistic small event (~120 bytes), like an OpenStack notification digest.
EVENT = {
    "message_id": "5b3e1f0c-8d2a-4c1e",
    "event_type": "compute.instance.update",
    "payload": {"instance_id": "vm-0042", "state": "active"},
}

LUA = r"""
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(secret)s"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  other = 0
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"accepted": %%d, "other": %%d, "requests": %%d, "duration_us": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\n',
    a, o, summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout))
end
"""


class BenchError(Exception):
    pass


@dataclass
class Run:
    variant: str
    accepted: int
    other: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    queued: int

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def django_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_DEBUG="0",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare_database(env: dict[str, str]) -> tuple[int, str]:
    """Migrate the throwaway database and create one enabled noop provider."""
    run = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django, json; django.setup()\n"
                "from sync.models import CloudProvider\n"
                "p = CloudProvider(name='bench', cloud_sync_enabled=True, cloud_sync_driver='noop')\n"
                "p.full_clean(); p.save()\n"
                "print(json.dumps([p.pk, p.endpoint_secret]))",
            ],
            **run,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"preparing the database failed:\n{exc.stderr}") from exc
    pk, secret = json.loads(out.strip().splitlines()[-1])
    return pk, secret


def start_gunicorn(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "gunicorn", "project.wsgi",
        "--workers", str(workers), "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        "--error-logfile", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    raise BenchError("gunicorn did not start listening within 30 s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def post(url: str, body: bytes, secret: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict:
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    for line in proc.stdout.splitlines():
        if line.startswith("WRK-RESULT "):
            return json.loads(line.removeprefix("WRK-RESULT "))
    raise BenchError(f"no result line in wrk's output:\n{proc.stdout}")


def measure(
    variant: str, url: str, script: Path, client: redis.Redis, args: argparse.Namespace
) -> Run:
    if args.warmup > 0:
        wrk(url, script, args.warmup, args.connections, args.threads)
    time.sleep(0.5)  # let requests dropped in flight by wrk finish server-side
    before = client.llen(QUEUE)
    result = wrk(url, script, args.duration, args.connections, args.threads)
    time.sleep(0.5)
    queued = client.llen(QUEUE) - before
    run = Run(
        variant=variant,
        accepted=result["accepted"],
        other=result["other"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        socket_errors=sum(result[k] for k in ("connect", "read", "write", "timeout")),
        queued=queued,
    )
    print(
        f"  {variant:<9} {run.rate:8.0f} 202/s  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms"
        f"  non-202 {run.other}  socket errors {run.socket_errors}  queue +{queued}",
        file=sys.stderr,
    )
    return run


def check(run: Run, expect_queue: bool, connections: int) -> list[str]:
    problems = []
    if run.accepted == 0:
        problems.append(f"{run.variant}: no 202 at all")
    if run.other:
        problems.append(f"{run.variant}: {run.other} answers were not 202")
    if run.socket_errors > max(1, run.accepted // 1000):
        problems.append(f"{run.variant}: {run.socket_errors} socket errors")
    if expect_queue:
        # wrk stops with up to one request per connection in flight: the server
        # queues those, wrk never reads their 202.
        if not run.accepted <= run.queued <= run.accepted + connections:
            problems.append(
                f"{run.variant}: {run.accepted} answered 202 but the queue grew by {run.queued}"
            )
    elif run.queued:
        problems.append(f"{run.variant}: the bare view queued {run.queued} messages")
    return problems


def table(runs: dict[str, list[Run]]) -> str:
    """Medians over the rounds; the ratio is the median of each round's ratio
    (the two runs of a round are adjacent in time, which cancels most of the
    noise of a shared machine)."""

    def median(variant: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[variant])

    ratio = statistics.median(
        e.rate / b.rate for e, b in zip(runs["endpoint"], runs["bare"], strict=True)
    )
    lines = [
        "| variant | req/s (202) | p50 | p99 | ratio vs bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant, label, r in (("bare", "bare Django view (202, no work)", 1.0),
                              ("endpoint", "`POST /cloud-sync/provider/<id>/`", ratio)):  # fmt: skip
        lines.append(
            f"| {label} | {median(variant, 'rate'):,.0f} | {median(variant, 'p50_ms'):.2f} ms "
            f"| {median(variant, 'p99_ms'):.2f} ms | {r:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=1, help="bare/endpoint pairs (median)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    args = parser.parse_args(argv)

    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    db = args.redis_url.rstrip("/").rsplit("/", 1)[-1]
    if not db.isdigit() or int(db) == 0:
        print("--redis-url must name a Redis database other than 0", file=sys.stderr)
        return 2

    client = redis.Redis.from_url(args.redis_url)
    tmp = Path(tempfile.mkdtemp(prefix="cloudsync-bench-"))
    gunicorn = None
    try:
        client.ping()
        client.flushdb()
        env = django_env(f"sqlite:///{tmp / 'bench.sqlite3'}", args.redis_url)
        pk, secret = prepare_database(env)
        body = json.dumps(EVENT, separators=(",", ":"))
        script = tmp / "post.lua"
        script.write_text(LUA % {"body": body, "secret": secret})

        port = free_port()
        gunicorn = start_gunicorn(env, port, args.workers, tmp / "gunicorn.log")
        urls = {
            "bare": f"http://127.0.0.1:{port}/bench/bare/{pk}/",
            "endpoint": f"http://127.0.0.1:{port}/cloud-sync/provider/{pk}/",
        }
        # Smoke test: both answer 202, only the endpoint queues.
        for variant, url in urls.items():
            status = post(url, body.encode(), secret)
            if status != 202:
                raise BenchError(f"{variant}: smoke POST answered {status}, not 202")
        if client.llen(QUEUE) != 1:
            raise BenchError(f"smoke test: queue holds {client.llen(QUEUE)} messages, not 1")
        client.delete(QUEUE)

        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; gunicorn "
            f"{args.workers} sync workers; wrk -t{args.threads} -c{args.connections}, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s per run; body {len(body)} bytes",
            file=sys.stderr,
        )
        runs: dict[str, list[Run]] = {"bare": [], "endpoint": []}
        problems: list[str] = []
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
            order = ("bare", "endpoint") if i % 2 == 0 else ("endpoint", "bare")
            for variant in order:
                run = measure(variant, urls[variant], script, client, args)
                runs[variant].append(run)
                problems += check(run, variant == "endpoint", args.connections)
                client.delete(QUEUE)
            print(
                f"  ratio {runs['endpoint'][-1].rate / runs['bare'][-1].rate:.2f}", file=sys.stderr
            )
        print(table(runs))
        if gunicorn.poll() is not None:
            problems.append(f"gunicorn died (exit {gunicorn.returncode})")
        for problem in problems:
            print(f"ERROR: {problem}", file=sys.stderr)
        return 1 if problems else 0
    except (BenchError, redis.RedisError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(gunicorn)
        try:
            client.flushdb()
        except redis.RedisError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
