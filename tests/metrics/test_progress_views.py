"""Where a run's progress is shown besides the API's run: the OpenAPI schema
documents it, the admin lists and shows it."""

from __future__ import annotations

import pytest
import yaml
from django.urls import reverse

from sync.choices import SyncRunKindChoices as RunKind
from sync.models import SyncRun

pytestmark = pytest.mark.django_db

PROGRESS = {"phase": "applying", "seen": 12000, "applied": 11000, "updated_at": "2026-11-28T10:00:00+00:00",
            "kinds": {"project": {"pages": 1, "seen": 3, "applied": 3, "done": True},
                      "host": {"pages": 12, "seen": 11997, "applied": 10997, "done": False}}}


def test_the_schema_documents_the_progress_of_a_run(admin_client):
    schema = yaml.safe_load(admin_client.get("/api/schema/").content)
    parts = schema["components"]["schemas"]
    run = parts["SyncRun"]["properties"]["progress"]
    assert run["allOf"][0]["$ref"].endswith("/SyncRunProgress") or run.get("$ref", "").endswith(
        "/SyncRunProgress")
    progress = parts["SyncRunProgress"]["properties"]
    assert set(progress) == {"phase", "kinds", "seen", "applied", "attempt", "updated_at"}
    assert set(parts["SyncRunKindProgress"]["properties"]) == {"pages", "seen", "applied", "done"}
    phase_enum = next(v for k, v in parts.items() if k.startswith("Phase") and "enum" in v)["enum"]
    assert phase_enum == ["listing", "applying", "finishing", "done"]


def test_the_api_shows_progress_and_an_empty_one_for_old_runs(admin_client, provider):
    running = SyncRun.objects.create(cloudprovider=provider, kind=RunKind.FULL, progress=PROGRESS)
    body = admin_client.get(f"/api/sync-runs/{running.pk}/").json()
    assert body["progress"] == PROGRESS
    SyncRun.objects.filter(pk=running.pk).update(status="failed", progress={})
    assert admin_client.get("/api/sync-runs/").json()["results"][0]["progress"] == {}


def test_the_admin_lists_and_shows_progress(admin_client, provider):
    run = SyncRun.objects.create(cloudprovider=provider, kind=RunKind.FULL, progress=PROGRESS)
    line = "applying: 12000 listed, 11000 applied (host 11997/10997, 12 pages)"
    listing = admin_client.get(reverse("admin:sync_syncrun_changelist")).content.decode()
    assert line in listing
    page = admin_client.get(reverse("admin:sync_syncrun_change", args=[run.pk])).content.decode()
    assert line in page and "11997" in page and "finishing" not in page
