"""Starting sync runs (202 / 409 while one runs) and applying stored plans."""

from __future__ import annotations

import pytest

from sync.models import SyncRun


@pytest.fixture
def fake_provider(provider_factory):
    return provider_factory(
        cloud_sync_driver="fake.configured", client_config={"auth_url": "u", "password": "p"}
    )


def test_start_run(admin_api, fake_provider, broker):
    # when
    response = admin_api.post(
        "/api/sync-runs/", {"provider": fake_provider.pk, "kind": "dry_run"}, format="json"
    )
    # then
    assert response.status_code == 202, response.content
    run = SyncRun.objects.get()
    assert response.json()["id"] == run.pk
    assert (run.kind, run.status, run.triggered_by) == ("dry_run", "running", "api:api-admin")
    assert broker.llen("cloudsync.sync") == 1
    assert b"sync.tasks.run_sync" in broker.lindex("cloudsync.sync", 0)


def test_start_run_broker_down_is_503(admin_api, fake_provider, monkeypatch):
    from kombu.exceptions import OperationalError

    from sync import queueing

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(queueing, "send_task", down)
    response = admin_api.post("/api/sync-runs/", {"provider": fake_provider.pk}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert SyncRun.objects.get().status == "failed"  # the lock is released


def test_start_while_running_is_409(admin_api, fake_provider):
    # given
    running = SyncRun.objects.create(cloudprovider=fake_provider, kind="full", status="running")
    # when
    response = admin_api.post("/api/sync-runs/", {"provider": fake_provider.pk}, format="json")
    # then
    assert response.status_code == 409
    assert f"run #{running.pk}" in response.json()["detail"]
    assert "already running" in response.json()["detail"]
    assert SyncRun.objects.count() == 1


@pytest.mark.parametrize(
    "body, status",
    [
        ({"provider": 999999, "kind": "full"}, 400),
        ({"kind": "full"}, 400),
        ({"provider": "x"}, 400),
    ],
)
def test_start_bad_requests(admin_api, fake_provider, body, status):
    assert admin_api.post("/api/sync-runs/", body, format="json").status_code == status


def test_snapshot_runs_cannot_be_started_here(admin_api, fake_provider):
    body = {"provider": fake_provider.pk, "kind": "snapshot"}
    response = admin_api.post("/api/sync-runs/", body, format="json")
    assert response.status_code == 400
    assert "kind" in response.json()


def test_start_for_driver_without_full_sync_is_409(admin_api, provider):
    response = admin_api.post("/api/sync-runs/", {"provider": provider.pk}, format="json")
    assert response.status_code == 409
    assert "does not support full sync" in response.json()["detail"]


def test_start_for_disabled_provider_is_409(admin_api, provider_factory):
    disabled = provider_factory(cloud_sync_enabled=False)
    response = admin_api.post("/api/sync-runs/", {"provider": disabled.pk}, format="json")
    assert response.status_code == 409
    assert "disabled" in response.json()["detail"]


def test_list_and_detail(admin_api, fake_provider):
    run = SyncRun.objects.create(
        cloudprovider=fake_provider,
        kind="full",
        status="needs_approval",
        drift_healed=4,
        counts={"host": {"deleted": 30}},
        plan={"host": [{"op": "delete", "external_id": "h1"}]},
    )
    listed = admin_api.get("/api/sync-runs/").json()["results"][0]
    assert listed["has_plan"] is True and "plan" not in listed
    assert listed["counts"] == {"host": {"deleted": 30}} and listed["drift_healed"] == 4
    detail = admin_api.get(f"/api/sync-runs/{run.pk}/").json()
    assert detail["plan"] == {"host": [{"op": "delete", "external_id": "h1"}]}


def test_apply_stored_plan(admin_api, fake_provider, broker):
    run = SyncRun.objects.create(
        cloudprovider=fake_provider, kind="full", status="needs_approval", plan={"host": []}
    )
    response = admin_api.post(f"/api/sync-runs/{run.pk}/apply/")
    assert response.status_code == 202
    assert response.json()["id"] == run.pk
    assert broker.llen("cloudsync.sync") == 1
    assert b"sync.tasks.apply_plan" in broker.lindex("cloudsync.sync", 0)


@pytest.mark.parametrize(
    "status, plan", [("succeeded", None), ("running", None), ("needs_approval", None)]
)
def test_apply_not_applicable_is_409(admin_api, fake_provider, status, plan):
    run = SyncRun.objects.create(cloudprovider=fake_provider, kind="full", status=status, plan=plan)
    response = admin_api.post(f"/api/sync-runs/{run.pk}/apply/")
    assert response.status_code == 409
    assert f"#{run.pk}" in response.json()["detail"]
