"""``cloudsync_sync`` follows the run's progress: plain lines without a
terminal, a progress bar (rich) on one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from prometheus_client import CollectorRegistry, multiprocess

from sync.models import SyncRun
from tests.first_hour.procs import ROOT, child_env

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

LINE = re.compile(r"^run #(\d+) (\w+): (\d+) listed, (\d+) applied")


@pytest.fixture
def cloud(fake_openstack, provider_factory):
    fake_openstack.data.add_flavors(2)
    fake_openstack.data.add_servers(3000)
    provider = provider_factory(cloud_sync_driver="openstack.ocata",
                                client_config=fake_openstack.client_config())
    listed = sum(len(c) for c in (fake_openstack.data.projects, fake_openstack.data.flavors,
                                  fake_openstack.data.images, fake_openstack.data.servers,
                                  fake_openstack.data.ports))
    return provider, listed


def test_without_a_terminal_it_prints_progress_lines_then_the_summary(fake_openstack, cloud):
    provider, listed = cloud
    fake_openstack.slow(0.7, "/compute/v2.1/servers/detail", times=10)  # a listing that takes a while
    out = StringIO()
    call_command("cloudsync_sync", str(provider.pk), "--progress-every", "0", stdout=out)
    text = out.getvalue()
    lines = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
    run = SyncRun.objects.get(cloudprovider=provider)
    assert {int(run_id) for run_id, *_ in lines} == {run.pk}
    assert len(lines) >= 3, text  # growing while it ran, then done
    counts = [(int(seen), int(applied)) for _, _, seen, applied in lines]
    assert counts == sorted(counts)
    assert lines[-1][1:] == ("done", str(listed), str(listed))
    assert "\x1b[" not in text  # no terminal control codes in a log
    summary = text.splitlines().index(next(line for line in text.splitlines()
                                           if line.startswith(f"run #{run.pk} full of ")))
    assert summary > max(i for i, line in enumerate(text.splitlines()) if LINE.match(line))


def test_no_progress_prints_only_the_summary(cloud):
    provider, _ = cloud
    out = StringIO()
    call_command("cloudsync_sync", str(provider.pk), "--no-progress", stdout=out)
    assert not any(LINE.match(line) for line in out.getvalue().splitlines())
    assert "succeeded" in out.getvalue()


def test_on_a_terminal_it_draws_a_progress_bar(fake_openstack, cloud):
    provider, listed = cloud
    fake_openstack.slow(0.7, "/compute/v2.1/servers/detail", times=10)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "manage.py", "cloudsync_sync", str(provider.pk)],
                            cwd=ROOT, env=child_env(TERM="xterm", COLUMNS="120"),
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    assert proc.wait(30) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "━" in text, text  # rich's bar
    assert "\x1b[" in text  # redrawn in place
    assert f"done: {listed} listed, {listed} applied" in text
    assert "succeeded" in text


def test_a_run_from_the_command_is_counted_in_the_services_metrics_directory(cloud, tmp_path):
    # cron runs cloudsync_sync in a process of its own: with the service's
    # PROMETHEUS_MULTIPROC_DIR in its environment, /metrics counts its run
    provider, listed = cloud
    done = subprocess.run([sys.executable, "manage.py", "cloudsync_sync", str(provider.pk),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=child_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    labels = {"provider": str(provider.pk), "driver": "openstack.ocata", "kind": "full"}
    assert registry.get_sample_value("cloudsync_sync_runs_total",
                                     {**labels, "outcome": "succeeded"}) == 1
    assert registry.get_sample_value("cloudsync_sync_objects_listed_total", labels) == listed
