"""``make run``'s process supervisor (scripts/run.py), run as a user runs it:
in a terminal (a pty), on SQLite and a Redis of its own; Ctrl-C stops all four
processes quietly and the script exits 0."""

from __future__ import annotations

import importlib.util
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.first_hour.procs import ROOT, free_port

SCRIPT = ROOT / "scripts" / "run.py"


def _load_run_module():
    spec = importlib.util.spec_from_file_location("cloudsync_run_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flower_api_is_open_only_without_basic_auth(monkeypatch) -> None:
    run = _load_run_module()
    for name in ("FLOWER_BASIC_AUTH", "FLOWER_AUTH", "FLOWER_UNAUTHENTICATED_API", "PORT",
                 "FLOWER_PORT", "FLOWER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    env = run.environment()
    assert env["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert (env["PORT"], env["FLOWER_PORT"], env["FLOWER_ADDRESS"]) == ("8000", "5555", "127.0.0.1")
    flower = run.commands(env)["flower"]
    assert "--address=127.0.0.1" in flower and "--port=5555" in flower
    assert run.commands(env)["web"][-1] == "0.0.0.0:8000"

    monkeypatch.setenv("FLOWER_BASIC_AUTH", "me:pw")
    monkeypatch.setenv("FLOWER_PORT", "5556")
    env = run.environment()
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert "--port=5556" in run.commands(env)["flower"]


def _descendants(pid: int) -> set[int]:
    """pid's children, their children, ... (Linux /proc)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except FileNotFoundError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def own_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server is required (the service runs on Redis)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class Terminal:
    """A command on a pseudo-terminal: what it prints, and Ctrl-C."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the command
            try:
                os.chdir(ROOT)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.output = b""
        self.status: int | None = None

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the other side is closed
                    return
                if not data:
                    return
                self.output += data

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")  # the line discipline sends SIGINT to the foreground group

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            self.read(0.2)
        return None

    def kill(self) -> None:
        if self.status is None:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_ctrl_c_stops_all_four_quietly(tmp_path, own_redis) -> None:
    port, flower_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": own_redis,
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr

    term = Terminal([sys.executable, str(SCRIPT)], env)
    try:
        deadline = time.monotonic() + 90
        web = flower = None
        while time.monotonic() < deadline and not (web and flower and "ready." in term.text):
            term.read(0.5)
            try:
                web = web or requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                flower = flower or requests.get(
                    f"http://127.0.0.1:{flower_port}/api/workers", timeout=2
                )
            except requests.ConnectionError:
                continue
        assert web is not None and web.status_code == 200, term.text
        assert flower is not None and flower.status_code == 200, term.text  # API open by default
        assert "ready." in term.text, term.text  # the worker
        term.read(1)
        children = _descendants(term.pid)
        assert len(children) >= 4

        started = time.monotonic()
        term.ctrl_c()
        status = term.wait(60)
        elapsed = time.monotonic() - started
        term.read(0.5)
    finally:
        term.kill()
    text = term.text
    assert status == 0, text
    assert elapsed < 30, text
    assert [pid for pid in children if _alive(pid)] == []
    for noise in ("Traceback", "SystemExit", "Terminated", "No directory at", "Cold shutdown"):
        assert noise not in text, text
    assert text.count("cloudsync: stopping") == 1
    assert "cloudsync: stopped" in text
    assert "beat: Starting" in text and "Warm shutdown" in text
    # the web process's access log: every request, with a timestamp
    assert '"GET /healthz HTTP/1.1" 200' in text
    [line] = [ln for ln in text.splitlines() if '"GET /healthz HTTP/1.1"' in ln][:1]
    assert line.split(" INFO django.server ")[0].count(":") == 2  # "YYYY-MM-DD HH:MM:SS,mmm"
