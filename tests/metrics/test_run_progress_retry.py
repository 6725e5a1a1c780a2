"""Run progress never goes backwards (issue 15 review): a full sync whose
first attempt fails mid-listing (the fake OpenStack answers 500 on the third
page of servers) is retried; polled from the row while both attempts run,
every figure only grows, and the run ends at what the last attempt listed."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from sync import runs
from sync.changes import Change, Kind, Op
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import TemporaryError
from sync.models import SyncRun
from sync.progress import Progress, merged
from tests.metrics.test_run_progress import _monotonic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SERVERS = 3000  # three pages of servers
SERVERS_PATH = "/compute/v2.1/servers/detail"


class Poller(threading.Thread):
    """Reads the run's progress from its row, as the API does, until stopped."""

    def __init__(self, run_id: int) -> None:
        super().__init__(daemon=True)
        self.run_id, self.seen, self.stop = run_id, [], threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.wait(0.02):
                progress = (
                    SyncRun.objects.filter(pk=self.run_id)
                    .values_list("progress", flat=True)
                    .first()
                )
                if progress and (not self.seen or progress != self.seen[-1]):
                    self.seen.append(progress)
        finally:
            connection.close()


def test_a_retried_run_shows_progress_that_never_goes_back(
    fake_openstack, provider_factory, settings
):
    settings.CLOUDSYNC_RUN_PROGRESS_SECONDS = 0.05
    data = fake_openstack.data
    data.add_flavors(2)
    data.add_servers(SERVERS)
    provider = provider_factory(
        cloud_sync_driver="openstack.ocata", client_config=fake_openstack.client_config()
    )
    expected = {
        "project": len(data.projects),
        "flavor": len(data.flavors),
        "image": len(data.images),
        "host": SERVERS,
        "host_ip": len(data.ports),
    }
    run = runs.start_run(provider, "full", triggered_by="test")
    poller = Poller(run.pk)
    poller.start()
    try:
        # first attempt: two slow pages of servers listed, then the cloud fails
        fake_openstack.fail(500, SERVERS_PATH, after=2, times=100)
        fake_openstack.slow(0.5, SERVERS_PATH, times=100)
        with pytest.raises(TemporaryError):
            runs.execute_run(run.pk)
        runs.release_for_retry(run.pk, 0)  # as the task does before its retry
        time.sleep(0.2)
        first = SyncRun.objects.get(pk=run.pk).progress
        assert first["attempt"] == 1 and first["kinds"]["host"]["seen"] >= 1000, first
        # the retry lists everything again from the start
        fake_openstack.clear_faults()
        fake_openstack.slow(0.5, SERVERS_PATH, times=100)
        done = runs.execute_run(run.pk)
        assert done.status == RunStatus.SUCCEEDED, done.error
        time.sleep(0.1)
    finally:
        poller.stop.set()
        poller.join()
    seen = poller.seen
    second = [p for p in seen if p["attempt"] == 2 and p["phase"] != "done"]
    assert second, seen  # the retry was seen running
    for before, after in zip(seen, seen[1:], strict=False):
        assert _monotonic(before, after) == [], (before, after)
        assert after["attempt"] >= before["attempt"]
    final = SyncRun.objects.get(pk=run.pk).progress
    assert final["phase"] == "done" and final["attempt"] == 2
    assert {kind: entry["seen"] for kind, entry in final["kinds"].items()} == expected
    assert final["seen"] == final["applied"] == sum(expected.values())
    assert all(entry["done"] for entry in final["kinds"].values())


def changes(*kinds: tuple[Kind, int]) -> list[Change]:
    return [
        Change(kind, Op.UPSERT, f"{kind.value}-{n}", {}, "1")
        for kind, count in kinds
        for n in range(count)
    ]


def test_a_kind_listed_again_in_a_later_chunk_stays_done():
    progress = Progress()
    progress.listed(changes((Kind.HOST, 3), (Kind.HOST_IP, 2)))  # host done: the listing moved on
    assert progress.as_json()["kinds"]["host"]["done"]
    progress.listed(changes((Kind.HOST_IP, 1), (Kind.HOST, 1)))  # interleaved kinds
    shown = progress.as_json()["kinds"]
    assert shown["host"]["done"] and shown["host"]["seen"] == 4


def test_a_retried_part_does_not_lower_the_split_runs_figures():
    first = Progress()
    first.listed(changes((Kind.HOST, 5)))
    first.applied(changes((Kind.HOST, 5)))
    stored = merged({}, first.as_json())
    retried = Progress()  # the part's retry lists its kinds again, from zero
    retried.listed(changes((Kind.HOST, 2)))
    again = merged(stored, retried.as_json())
    assert again["kinds"]["host"] == {"pages": 1, "seen": 5, "applied": 5, "done": False}
    assert (again["seen"], again["applied"]) == (5, 5)
