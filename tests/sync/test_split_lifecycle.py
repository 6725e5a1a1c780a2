"""A split run's lifecycle around its chord: who may act on the run (the
chord's token), takeover and the sweeper while parts wait or run, and the
chord's error callback. The parts and the finish themselves are exercised in
tests/sync/test_full_sync.py (in process) and tests/e2e/test_split_sync_worker.py
(through a real worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import ChordError
from django.utils import timezone

from sync import runs
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudHost, ListedId, SyncRun
from sync.tasks import split_failed
from tests.fake_openstack import FakeOpenStack

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]


@pytest.fixture
def provider(fake_openstack: FakeOpenStack, provider_factory):
    fake_openstack.data.add_flavors(1)
    fake_openstack.data.add_servers(4)
    return provider_factory(cloud_sync_driver="openstack.ocata",
                            client_config=fake_openstack.client_config())


def split_run(provider, token: str = runs.SPLIT + "chord-1", beat_ago: float = 0) -> SyncRun:
    """A running full sync handed to a chord whose token is ``token``, its
    heartbeat last renewed ``beat_ago`` seconds ago."""
    run = runs.claim_run(provider, RunKind.FULL)
    SyncRun.objects.filter(pk=run.pk).update(
        worker=token, heartbeat_at=timezone.now() - timedelta(seconds=beat_ago))
    run.refresh_from_db()
    return run


def test_parts_may_wait_in_the_queue_without_the_run_being_taken_over(provider, settings):
    # given a split run whose parts have not renewed the heartbeat for longer
    # than a single task's stale limit, but less than the task time limit
    run = split_run(provider, beat_ago=settings.CLOUDSYNC_RUN_STALE_SECONDS * 3)
    # then the sweeper leaves it alone, and a redelivered run_sync does not take it
    assert run.pk not in runs.abandoned_runs()
    again, executed = runs.execute_run_once(run.pk, may_split=True)
    assert not executed and again.worker == run.worker
    # while an unsplit run silent that long is taken over
    SyncRun.objects.filter(pk=run.pk).update(worker="host:1:2")
    assert run.pk in runs.abandoned_runs()


def test_a_split_run_silent_for_the_task_time_limit_is_taken_over(provider, settings):
    run = split_run(provider, beat_ago=settings.CELERY_TASK_TIME_LIMIT + 60)
    ListedId.objects.create(run_id=run.pk, kind="host", external_id="from-the-lost-chord")
    assert run.pk in runs.abandoned_runs()
    # taken over and executed again (here unsplit: execute_run never splits)
    done = runs.execute_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 4
    assert not ListedId.objects.filter(run_id=run.pk).exists()


def test_an_old_chord_cannot_touch_a_run_taken_over_by_a_new_one(provider):
    run = split_run(provider, token=runs.SPLIT + "new")
    old = runs.SPLIT + "old"
    assert runs.execute_part(run.pk, "servers", old)["skipped"]
    assert not runs.fail_split(run.pk, old, "part servers failed: late")
    finished = runs.finish_split(run.pk, old, [{"part": "servers", "error": "late"}])
    assert finished.status == RunStatus.RUNNING and finished.error == ""
    assert not CloudHost.objects.filter(cloudprovider=provider).exists()


def test_a_part_stops_listing_once_another_part_failed_the_run(provider, monkeypatch):
    import sync.reconcile
    from tests.sync.test_full_sync import midway

    run = split_run(provider)
    monkeypatch.setattr(sync.reconcile, "CHUNK", 2)  # 4 servers: 2 chunks
    # another part fails the run while this one lists its third server
    midway(monkeypatch, lambda: runs.fail_split(run.pk, run.worker, "part ips failed: boom"))
    outcome = runs.execute_part(run.pk, "servers", run.worker)
    assert "ended or was taken over" in outcome["skipped"]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == "part ips failed: boom"
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 2  # its first chunk only
    assert not ListedId.objects.filter(run_id=run.pk).exists()
    # and a part that starts after the run failed lists nothing
    assert "skipped" in runs.execute_part(run.pk, "ips", run.worker)


def test_the_chords_error_callback_fails_the_run_and_deletes_nothing(provider):
    run = split_run(provider)
    ListedId.objects.create(run_id=run.pk, kind="host", external_id="x")
    # what Celery calls when a part task itself failed (e.g. killed at the time limit)
    split_failed(None, ChordError("Dependency abc raised TimeLimitExceeded(10800)"), None,
                 run_id=run.pk, token=run.worker)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "split run failed: Dependency abc raised TimeLimitExceeded(10800)"
    assert not ListedId.objects.filter(run_id=run.pk).exists()
    provider.refresh_from_db()
    assert provider.last_full_sync_status == RunStatus.FAILED


def lease(run, part: str, **value) -> None:
    SyncRun.objects.filter(pk=run.pk).update(parts={part: value})


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_part_leaves_it_to_the_copy_that_lists_it(provider, fake_openstack):
    # given a part listed by a live executor (the broker handed its message
    # out again: the part ran longer than the visibility timeout)
    run = split_run(provider)
    lease(run, "servers", worker="host:1:1", beat=timezone.now().isoformat())
    listed_before = fake_openstack.count("/compute/v2.1/servers/detail")
    # then the copy does not wait in its worker process: it is told to ask
    # again later (the task retries it after a heartbeat), having listed nothing
    with pytest.raises(runs.PartBusy):
        runs.execute_part(run.pk, "servers", run.worker)
    assert fake_openstack.count("/compute/v2.1/servers/detail") == listed_before
    # and once the executor is done, a later copy reports its outcome
    done = {"part": "servers", "kinds": ["host"], "counts": {"host": {"created": 4}}}
    lease(run, "servers", done=done)
    assert runs.execute_part(run.pk, "servers", run.worker) == done
    assert fake_openstack.count("/compute/v2.1/servers/detail") == listed_before  # listed nothing
    assert not CloudHost.objects.filter(cloudprovider=provider).exists()


def test_a_part_whose_executor_died_is_taken_over(provider, settings):
    run = split_run(provider)
    stale = timezone.now() - timedelta(seconds=settings.CLOUDSYNC_RUN_STALE_SECONDS + 5)
    lease(run, "servers", worker="host:1:1", beat=stale.isoformat())
    outcome = runs.execute_part(run.pk, "servers", run.worker)
    assert outcome["counts"]["host"] == {"created": 4}
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 4
    run.refresh_from_db()
    assert run.parts["servers"] == {"done": outcome}
    # and a later copy returns that outcome without listing again
    assert runs.execute_part(run.pk, "servers", run.worker) == outcome
