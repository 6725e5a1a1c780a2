"""The status API and pages: who may see them, the figures they answer
(the same as sync.status), the schema, and the admin links to them."""

from __future__ import annotations

import io
import re
import shlex
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from sync import rollups
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import Event, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(provider_factory):
    provider = provider_factory(name="status-api")
    now = timezone.now()
    tally = rollups.Tally()
    tally.add(provider.pk, "received", now, n=10)
    tally.add(provider.pk, "processed", now, now - timedelta(seconds=0.4), n=9)
    tally.add(provider.pk, "processed", now, now - timedelta(seconds=2.5), n=1)
    rollups.write(tally)
    for i, state in enumerate((Status.DEAD, Status.DEAD, Status.FAILED)):
        Event.objects.create(cloudprovider=provider, key=f"k{i}", received_at=now, status=state)
    started = now - timedelta(minutes=10)
    for i, (applied, healed) in enumerate(((None, 40), (7, 3), (9, 1))):
        run = SyncRun.objects.create(cloudprovider=provider, kind=RunKind.FULL,
                                     status=RunStatus.SUCCEEDED, drift_healed=healed,
                                     events_applied=applied,
                                     counts={"host": {"created": 2, "unchanged": 5, "deleted": 1}})
        SyncRun.objects.filter(pk=run.pk).update(started_at=started + timedelta(minutes=i),
                                                 finished_at=started + timedelta(minutes=i, seconds=30))
    return provider


def staff(perms: bool) -> User:
    user = User.objects.create_user(f"staff-{perms}", password="pw", is_staff=True)
    if perms:
        user.user_permissions.add(Permission.objects.get(codename="view_cloudprovider"))
    return user


def test_provider_status_api(data):
    api = APIClient()
    assert api.get(f"/api/cloud-providers/{data.pk}/status/").status_code == 401
    api.force_authenticate(User.objects.create_user("nobody"))
    assert api.get(f"/api/cloud-providers/{data.pk}/status/").status_code == 403
    api.force_authenticate(staff(perms=True))
    body = api.get(f"/api/cloud-providers/{data.pk}/status/").json()
    events = body["events"]
    assert events["totals"] == {"received": 10, "processed": 10, "ignored": 0, "failed": 0,
                                "dead": 0}
    assert (events["lag_p50_seconds"], events["lag_p99_seconds"]) == (0.5, 3.0)
    assert len(events["series"]) == 288 and events["step_seconds"] == 300
    assert body["inbox"] == {"queued": 0, "failed": 1, "dead": 2}
    assert [q["name"] for q in body["queues"]["queues"]] == ["cloudsync.events", "cloudsync.sync"]
    assert body["queues"]["queues"][0]["depth"] == 0 and body["queues"]["error"] == ""
    last = body["last_full_sync"]
    assert (last["drift_healed"], last["events_applied"], last["objects_listed"]) == (1, 9, 7)
    assert last["event_coverage"] == 0.9 and last["duration_seconds"] == 30.0
    assert [(c["events_applied"], c["drift_healed"], c["event_coverage"])
            for c in body["coverage"]] == [(7, 3, 0.7), (9, 1, 0.9)]  # oldest first
    assert len(api.get(f"/api/cloud-providers/{data.pk}/status/?step=900").json()["events"]["series"]) == 96
    assert api.get(f"/api/cloud-providers/{data.pk}/status/?step=60").status_code == 400
    assert api.get("/api/cloud-providers/999999/status/").status_code == 404


def test_overview_api(data, provider_factory):
    other = provider_factory(name="status-other")
    api = APIClient()
    api.force_authenticate(staff(perms=True))
    body = api.get("/api/cloud-providers/status/").json()
    rows = {row["id"]: row for row in body["providers"]}
    assert rows[data.pk]["events"]["processed"] == 10
    assert rows[data.pk]["inbox"]["dead"] == 2
    assert rows[data.pk]["last_full_sync"]["event_coverage"] == 0.9
    assert rows[other.pk]["last_full_sync"] is None and rows[other.pk]["lag_p50_seconds"] is None
    assert body["events"]["totals"]["received"] == 10


def test_schema_documents_the_status_endpoints(data):
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("schema-admin"))
    schema = api.get("/api/schema/?format=json").json()
    detail = schema["paths"]["/api/cloud-providers/{id}/status/"]["get"]
    assert detail["operationId"] == "cloud_providers_status"
    ref = detail["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ProviderStatus")
    assert "/api/cloud-providers/status/" in schema["paths"]
    props = schema["components"]["schemas"]["ProviderStatus"]["properties"]
    assert {"events", "queues", "inbox", "last_full_sync", "running", "coverage"} <= set(props)


def test_pages_need_staff_and_the_view_permission(client, data):
    response = client.get("/status/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(User.objects.create_user("plain", password="pw"))
    assert client.get(f"/status/{data.pk}/").status_code == 302  # not staff: the admin login
    client.force_login(staff(perms=False))
    assert client.get("/status/").status_code == 403
    client.force_login(staff(perms=True))
    assert client.get("/status/").status_code == 200
    assert client.get("/status/999999/").status_code == 404


def test_provider_page_shows_the_figures(client, data):
    client.force_login(staff(perms=True))
    html = client.get(f"/status/{data.pk}/").content.decode()
    assert 'data-figure="processed">10<' in html
    assert 'data-figure="lag_p99_seconds">≤ 3.0 s<' in html
    assert 'data-figure="dead_now">2<' in html
    assert 'data-figure="event_coverage">90 %<' in html
    assert f"cloudprovider__id__exact={data.pk}&amp;status__exact=dead" in html
    assert 'data-chart="events"' in html and 'data-chart="lag"' in html
    assert 'data-coverage="70.0"' in html and 'data-coverage="90.0"' in html
    assert "<script" not in html.split('id="content-main"')[1]  # server-side charts, no JS


def test_admin_links_to_the_status_pages(client, data):
    client.force_login(User.objects.create_superuser("links-admin"))
    assert 'href="/status/"' in client.get("/admin/").content.decode()
    change = client.get(f"/admin/sync/cloudprovider/{data.pk}/change/").content.decode()
    assert f'href="/status/{data.pk}/"' in change


def test_the_readme_status_examples_run_as_written(data):
    """The README's *Status page* block, line by line, with the token of a
    user in the operator role (the REST API examples' user)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M)
               if "/status/" in b]
    calls = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("curl ")]
    assert len(calls) == 2
    out = io.StringIO()
    call_command("cloudsync_create_token", "readme-status", "--create-user", "--role", "operator",
                 stdout=out)
    api = APIClient()
    for line in calls:
        line = (line.replace("$API", "/api").replace("$PROVIDER_ID", str(data.pk))
                .replace("$AUTH", f"Authorization: Token {out.getvalue().strip()}"))
        assert "$" not in line, line
        words = shlex.split(line)
        url = next(w for w in words if w.startswith("/api/"))
        header = words[words.index("-H") + 1]
        response = api.get(url, HTTP_AUTHORIZATION=header.split(": ", 1)[1])
        assert response.status_code == 200, (line, response.content)
        assert response.json()["events"]["totals"]["received"] == 10
