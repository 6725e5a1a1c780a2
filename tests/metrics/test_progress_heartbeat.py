"""A progress write the database refuses costs neither the run's heartbeat
(else the sweeper would take a live run over) nor the progress itself (it
is written once the database takes it again) (issue 15 review). The refusal
is real: a trigger on the runs table."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from sync import runs
from sync.changes import Change, Kind, Op
from sync.models import SyncRun
from sync.progress import Progress

pytestmark = pytest.mark.django_db(transaction=True)

REFUSE_PROGRESS = """
    IF NEW.progress IS DISTINCT FROM OLD.progress THEN
        RAISE EXCEPTION 'progress refused';
    END IF;
"""


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_refused_progress_write_keeps_the_heartbeat_and_is_written_later(
    provider, settings, pg_trigger
):
    settings.CLOUDSYNC_RUN_HEARTBEAT_SECONDS = 0.2
    settings.CLOUDSYNC_RUN_PROGRESS_SECONDS = 0.05
    accept_progress = pg_trigger("cs_test_no_progress", SyncRun, "UPDATE", REFUSE_PROGRESS)
    run = runs.claim_run(provider, "full", triggered_by="test")
    worker = "test-executor"
    started = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(worker=worker, heartbeat_at=started)
    progress = Progress()
    progress.listed([Change(Kind.HOST, Op.UPSERT, f"vm-{n}", {}, "1") for n in range(3)])
    with runs._heartbeat(run.pk, worker, progress=progress):
        # the progress cannot be written: the heartbeat goes on all the same
        assert wait_for(lambda: SyncRun.objects.get(pk=run.pk).heartbeat_at > started)
        assert SyncRun.objects.get(pk=run.pk).progress == {}
        accept_progress()  # the database takes it again; the progress did not change meanwhile
        assert wait_for(lambda: SyncRun.objects.get(pk=run.pk).progress.get("seen") == 3)
