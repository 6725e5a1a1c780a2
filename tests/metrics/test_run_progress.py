"""Run progress (issue 15): a full sync of 20,000 servers against the fake
OpenStack, run by a real worker, polled through the API while it runs."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync import runs
from sync.choices import SyncRunStatusChoices as RunStatus

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.timeout(600),
]

SERVERS = 20_000


@pytest.fixture
def api() -> APIClient:
    user = User.objects.create_superuser("progress-admin", "a@example.com", "pw")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _monotonic(before: dict, after: dict) -> list[str]:
    """What went backwards from ``before`` to ``after`` (empty: nothing)."""
    bad = [name for name in ("seen", "applied") if after[name] < before[name]]
    for kind, entry in before["kinds"].items():
        now = after["kinds"].get(kind)
        if now is None:
            bad.append(f"{kind} vanished")
            continue
        bad += [f"{kind}.{name}" for name in ("pages", "seen", "applied") if now[name] < entry[name]]
        if entry["done"] and not now["done"]:
            bad.append(f"{kind}.done")
    return bad


def test_a_20k_server_full_sync_reports_growing_progress_through_the_api(
        fake_openstack, provider_factory, celery_worker, api):
    data = fake_openstack.data
    data.add_flavors(3)
    data.add_servers(SERVERS)
    provider = provider_factory(cloud_sync_driver="openstack.ocata",
                                client_config=fake_openstack.client_config())
    expected = {"project": len(data.projects), "flavor": len(data.flavors), "image": len(data.images),
                "host": SERVERS, "host_ip": len(data.ports)}

    began = time.monotonic()
    run = runs.start_run(provider, "full", triggered_by="test")
    seen: list[dict] = []
    while True:
        body = api.get(f"/api/sync-runs/{run.pk}/").json()
        if body["progress"] and (not seen or body["progress"] != seen[-1]):
            seen.append(body["progress"])
        if body["status"] != RunStatus.RUNNING:
            break
        assert time.monotonic() - began < 540, f"still running: {body['progress']}"
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    assert body["status"] == RunStatus.SUCCEEDED, body["error"]

    final = body["progress"]
    running = [p for p in seen if p["phase"] != "done"]
    print(f"\n{SERVERS} servers: {elapsed:.1f} s, {len(running)} progress states seen while running")
    # it was seen growing while the run was running, several times
    assert len(running) >= 3, seen
    assert any(0 < p["seen"] < sum(expected.values()) for p in running)
    for before, after in zip(seen, seen[1:], strict=False):
        assert _monotonic(before, after) == [], (before, after)
    # and it ends at what was listed
    assert final["phase"] == "done"
    assert {kind: entry["seen"] for kind, entry in final["kinds"].items()} == expected
    assert {kind: entry["applied"] for kind, entry in final["kinds"].items()} == expected
    assert final["seen"] == final["applied"] == sum(expected.values())
    assert all(entry["done"] for entry in final["kinds"].values())
    assert final["kinds"]["host"]["pages"] >= SERVERS // 1000
