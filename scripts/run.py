#!/usr/bin/env python3
"""``make run``: web, worker, beat and Flower in one terminal; Ctrl-C stops them.

Why a script rather than ``a & b & c & d; wait`` with ``trap 'kill 0'`` in the
Makefile: there, Ctrl-C reached every process twice (the terminal's SIGINT,
then the trap's SIGTERM), so Celery printed its warm-then-cold shutdown and a
``SystemExit`` traceback, and ``kill 0`` also killed make (``make: ***
Terminated``).

Here each process runs in its own session, so the terminal's Ctrl-C reaches
only this script. It then sends each process one SIGTERM (Celery's warm
shutdown: running tasks finish; runserver and Flower just exit), waits for
all of them and exits 0. A second Ctrl-C kills whatever is left. If one
process exits on its own (a port already taken, Redis gone), the others are
stopped the same way and the script exits with that process's status.

Environment: ``PORT`` (web, default 8000, all interfaces), ``FLOWER_PORT``
(default 5555) and ``FLOWER_ADDRESS`` (default 127.0.0.1). Flower's HTTP API
answers 401 unless it has authentication or ``FLOWER_UNAUTHENTICATED_API``
is set: without ``FLOWER_BASIC_AUTH=user:password`` (or ``FLOWER_AUTH``) this
script sets ``FLOWER_UNAUTHENTICATED_API=true``, Flower being bound to the
loopback address only.

Metrics (``/metrics``): the web and the worker's pool processes write their
figures to ``PROMETHEUS_MULTIPROC_DIR`` (default ``var/metrics``), which this
script empties at start: every process writing there starts with it. Beat
and Flower do not get the variable (they count nothing of ours; Flower's own
metrics would otherwise land in the directory).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WITH_METRICS = ("web", "worker")
# Mingle (asking other workers for revoked task ids at start, 1 s of waiting)
# and gossip (following every other worker's heartbeats): this service
# revokes no task and needs neither; Flower reads task events and heartbeats.
WORKER_FLAGS = ("--without-mingle", "--without-gossip")


def commands(env: dict[str, str]) -> dict[str, list[str]]:
    """The four processes, by the name the script reports them under."""
    celery = [str(BIN / "celery"), "-A", "project"]
    return {
        "web": [sys.executable, "manage.py", "runserver", f"0.0.0.0:{env['PORT']}"],
        "worker": [*celery, "worker", "-Q", "cloudsync.events,cloudsync.sync", *WORKER_FLAGS,
                   "-l", "info"],
        "beat": [*celery, "beat", "-l", "info"],
        "flower": [
            *celery,
            "flower",
            f"--address={env['FLOWER_ADDRESS']}",
            f"--port={env['FLOWER_PORT']}",
        ],
    }


def environment() -> dict[str, str]:
    """This process's environment with the defaults ``make run`` documents."""
    env = dict(os.environ)
    env.setdefault("PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not (env.get("FLOWER_BASIC_AUTH") or env.get("FLOWER_AUTH")):
        env.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
    env.setdefault(METRICS_ENV, str(ROOT / "var" / "metrics"))
    return env


def prepare_metrics_dir(path: Path) -> None:
    """An empty multiprocess directory: files of an earlier ``make run``
    would be added to this one's figures."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def process_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """The environment of one process: only web and worker write metrics."""
    if name in WITH_METRICS:
        return env
    return {key: value for key, value in env.items() if key != METRICS_ENV}


def _die_with_parent() -> None:
    """In the child: get SIGTERM if this script dies without stopping it
    (SIGKILL), instead of living on detached from any terminal (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def say(message: str) -> None:
    print(f"cloudsync: {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Starts the processes, forwards one stop request, reaps them."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.forced = False

    def start(self, env: dict[str, str]) -> None:
        for name, argv in commands(env).items():
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=process_env(name, env),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours alone
                preexec_fn=_die_with_parent,
            )

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            say("stopping web, worker, beat and Flower (Ctrl-C again to kill them)")
            self.signal_all(signal.SIGTERM)
        elif not self.forced:
            self.forced = True
            say("killing what is left")
            self.signal_all(signal.SIGKILL, group=True)

    def signal_all(self, signum: int, *, group: bool = False) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    if group:  # a killed worker's pool processes too
                        os.killpg(proc.pid, signum)
                    else:
                        proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    def wait(self) -> int:
        """Until all have exited; 0 after a requested stop, else the status
        of the first process that exited on its own."""
        status = 0
        while any(proc.poll() is None for proc in self.procs.values()):
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None and not self.stopping:
                    say(f"{name} exited with status {code}; stopping the others")
                    status = code or 1
                    self.stopping = True
                    self.signal_all(signal.SIGTERM)
            time.sleep(0.1)
        return status


def main() -> int:
    env = environment()
    prepare_metrics_dir(Path(env[METRICS_ENV]))
    supervisor = Supervisor()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.on_signal)
    supervisor.start(env)
    status = supervisor.wait()
    say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
