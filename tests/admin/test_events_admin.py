"""Event inbox and sync-run journal pages and their actions."""

from __future__ import annotations

import pytest
from django.utils import timezone

from sync.models import Event, SyncRun
from tests.admin.conftest import messages_of

pytestmark = pytest.mark.django_db

EVENTS = "/admin/sync/event/"
RUNS = "/admin/sync/syncrun/"


def make_event(provider, key: str, status: str, **kwargs) -> Event:
    return Event.objects.create(
        cloudprovider=provider, key=key, status=status, received_at=timezone.now(), **kwargs
    )


def test_replay_reopens_dead_and_failed_events(admin_client, provider, published):
    dead = make_event(provider, "msg-dead", "dead", error="retries exhausted")
    failed = make_event(provider, "msg-failed", "failed", error="bad payload: x")
    done = make_event(provider, "msg-done", "processed")

    response = admin_client.post(
        EVENTS, {"action": "replay", "_selected_action": [dead.pk, failed.pk, done.pk]}, follow=True
    )

    assert response.redirect_chain == [(EVENTS, 302)]
    for event in (dead, failed, done):
        event.refresh_from_db()
    assert dead.status == "queued" and dead.error == ""
    assert failed.status == "queued"
    assert done.status == "processed"
    [call] = published["replay_events"].calls
    assert sorted(call["event_ids"]) == sorted([dead.pk, failed.pk])
    texts = messages_of(response)
    assert "2 event(s) reopened and queued for replay." in texts
    assert any("1 event(s) skipped" in t for t in texts)


def test_event_list_filters_search_and_read_only_detail(admin_client, provider):
    event = make_event(
        provider,
        "oslo-7c1e",
        "failed",
        event_type="compute.instance.update",
        error="bad payload: no instance_id",
        body={"payload": {"instance_id": "abc", "nested": [1, 2]}},
        result={"created": 1},
    )
    make_event(provider, "other-key", "processed")

    listing = admin_client.get(EVENTS, {"q": "oslo-7c1e"}).content.decode()
    assert "oslo-7c1e" in listing and "other-key" not in listing
    for params in (
        {"status__exact": "failed"},
        {"event_type": "compute.instance.update"},
        {"cloudprovider__id__exact": provider.pk},
    ):
        assert "oslo-7c1e" in admin_client.get(EVENTS, params).content.decode(), params

    detail = admin_client.get(f"{EVENTS}{event.pk}/change/")
    html = detail.content.decode()
    assert detail.status_code == 200
    assert "<pre" in html and "&quot;instance_id&quot;: &quot;abc&quot;" in html
    assert "bad payload: no instance_id" in html and "&quot;created&quot;: 1" in html
    assert admin_client.get(f"{EVENTS}add/").status_code == 403


def test_sync_run_detail_and_apply_stored_plan(admin_client, provider, published):
    planned = SyncRun.objects.create(
        cloudprovider=provider,
        kind="dry_run",
        status="planned",
        finished_at=timezone.now(),
        counts={"host": {"upsert": 3}},
        plan={"changes": [{"kind": "host", "external_id": "h-1"}]},
    )
    failed = SyncRun.objects.create(
        cloudprovider=provider, kind="full", status="failed", error="network error: boom"
    )

    listing = admin_client.get(RUNS)
    assert listing.status_code == 200
    detail = admin_client.get(f"{RUNS}{planned.pk}/change/").content.decode()
    assert (
        "&quot;upsert&quot;: 3" in detail and "&quot;external_id&quot;: &quot;h-1&quot;" in detail
    )

    response = admin_client.post(
        RUNS,
        {"action": "apply_stored_plan", "_selected_action": [planned.pk, failed.pk]},
        follow=True,
    )

    texts = messages_of(response)
    assert f"Apply of run #{planned.pk}'s stored plan queued." in texts
    assert any(f"run #{failed.pk} has no stored plan" in t for t in texts)
    assert published["apply_plan"].calls == [{"run_id": planned.pk, "triggered_by": "admin:admin"}]


def test_celery_beat_admin_is_still_registered(admin_client):
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert admin_client.get("/admin/django_celery_beat/periodictask/add/").status_code == 200


def test_release_running_action_frees_the_provider(admin_client, provider_factory):
    from sync import runs
    from sync.models import SyncRun

    provider = provider_factory()
    run = runs.claim_run(provider, "full")
    response = admin_client.post(
        "/admin/sync/syncrun/",
        {"action": "release_running", "_selected_action": [run.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == "failed" and "released by admin:" in run.error
    assert runs.claim_run(provider, "full").status == "running"
    assert SyncRun.objects.filter(cloudprovider=provider).count() == 2
