"""/metrics with several processes (issue 15): real gunicorn with 2 workers
and a real Celery worker with 2 pool processes (prefork) share a
PROMETHEUS_MULTIPROC_DIR; whichever gunicorn worker answers a scrape, the
totals are exact, also after a worker died and was replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sync.choices import EventStatusChoices as Status
from sync.metrics import process_identifier
from sync.models import Event
from tests.e2e.conftest import wait_for
from tests.first_hour.procs import ROOT, child_env, free_port
from tests.metrics.scrape import parse, value

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

BODIES = 40  # 30 one-message bodies and 10 two-message ones
MESSAGES = 30 + 2 * 10


def children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


@pytest.fixture
def stack(tmp_path) -> Iterator[dict]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = child_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), CLOUDSYNC_INGEST_BATCH_SIZE="4",
                    CLOUDSYNC_INGEST_FLUSH_SECONDS="0.05")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=(logs / f"{name}.log").open("w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    web = start("gunicorn", [sys.executable, "-m", "gunicorn", "project.wsgi:application",
                             "--bind", f"127.0.0.1:{port}", "--workers", "2",
                             "--graceful-timeout", "5", "--log-level", "warning"])
    worker = start("worker", [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q",
                              "cloudsync.events,cloudsync.sync", "--without-mingle",
                              "--without-gossip", "-c", "2", "-P", "prefork",
                              "-l", "warning", "-n", f"metrics-{port}@%h"])
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(lambda: up() and len(children(web.pid)) == 2, timeout=60)
        yield {"base": base, "dir": metrics_dir, "web": web, "worker": worker, "logs": logs}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def pids_with_files(path: Path) -> set[int]:
    host = process_identifier(0)[: -len("-0")]
    return {int(f.stem.rsplit("-", 1)[1]) for f in path.glob(f"*_{host}-*.db")}


def totals(base: str, provider_id: int) -> tuple[float, ...]:
    response = requests.get(f"{base}/metrics", timeout=5, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    samples = parse(response.text)
    pid = str(provider_id)
    return (value(samples, "cloudsync_events_received_total", provider=pid),
            value(samples, "cloudsync_events_total", provider=pid, outcome="processed"),
            value(samples, "cloudsync_event_lag_seconds_count", provider=pid))


def test_totals_are_exact_across_gunicorn_workers_and_pool_processes(stack, provider):
    base = stack["base"]
    url = f"{base}/cloud-sync/provider/{provider.pk}/"
    auth = {"Authorization": f"Bearer {provider.endpoint_secret}", "Connection": "close"}
    def bodies(round_: int) -> list[str]:
        return [f'{{"message_id": "m{round_}-{n}", "event_type": "demo.thing"}}'
                for n in range(30)] + [
            f'[{{"message_id": "a{round_}-{n}"}}, {{"message_id": "b{round_}-{n}"}}]'
            for n in range(10)]

    def send(body: str) -> int:
        return requests.post(url, data=body, headers=auth, timeout=10).status_code

    web_workers = children(stack["web"].pid)
    sent = 0
    # concurrent: both gunicorn workers get some (on a loaded machine one
    # may take a whole round: another round then, up to five)
    for round_ in range(5):
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(send, bodies(round_))) == [202] * BODIES
        sent += MESSAGES
        if len(web_workers & pids_with_files(stack["dir"])) == 2:
            break
    wait_for(lambda: Event.objects.filter(cloudprovider=provider, status=Status.PROCESSED).count()
             == sent, timeout=60)

    pool_processes = children(stack["worker"].pid)
    writers = pids_with_files(stack["dir"])
    assert len(web_workers & writers) == 2, (web_workers, writers)  # both counted requests
    assert pool_processes & writers, (pool_processes, writers)  # the pool counted outcomes

    expected = (sent, sent, sent)
    # every scrape, whichever worker answers it, sees all processes' figures
    wait_for(lambda: totals(base, provider.pk) == expected, timeout=10)
    assert {totals(base, provider.pk) for _ in range(10)} == {expected}

    # a gunicorn worker dies: gunicorn replaces it (child_exit marks it dead:
    # its live gauges go, its counters stay in the totals)
    victim = sorted(web_workers & writers)[0]
    live = stack["dir"] / f"gauge_livesum_{process_identifier(victim)}.db"
    live.write_bytes(b"")  # what a live gauge of that process would leave
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not live.exists() and len(children(stack["web"].pid) - {victim}) == 2,
             timeout=30)
    assert {totals(base, provider.pk) for _ in range(10)} == {expected}

    # a pool process ends (the worker's warm shutdown): Celery's
    # worker_process_shutdown marks it dead the same way
    pool_pid = sorted(pool_processes)[0]
    live = stack["dir"] / f"gauge_livesum_{process_identifier(pool_pid)}.db"
    live.write_bytes(b"")
    stack["worker"].send_signal(signal.SIGTERM)
    stack["worker"].wait(30)
    assert not live.exists()
    assert {totals(base, provider.pk) for _ in range(5)} == {expected}
