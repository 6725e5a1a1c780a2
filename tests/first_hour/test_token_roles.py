"""``cloudsync_create_token --role``: the documented roles grant what the
README says each needs, and nothing more."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command


def token(*args: str) -> str:
    out = StringIO()
    call_command("cloudsync_create_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


READS = ["cloud-providers", "cloud-hosts", "cloud-flavors", "cloud-images", "cloud-projects",
         "events", "sync-runs"]


@pytest.mark.django_db
def test_reader_reads_everything_and_changes_nothing(client, provider) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Token {token('rita', '--create-user', '--role', 'reader')}"}
    for endpoint in READS:
        assert client.get(f"/api/{endpoint}/", **auth).status_code == 200, endpoint
    assert client.post("/api/events/replay/?status=dead", **auth).status_code == 403
    started = client.post("/api/sync-runs/", {"provider": provider.pk, "kind": "dry_run"},
                          content_type="application/json", **auth)
    assert started.status_code == 403
    assert client.post("/api/cloud-providers/", {"name": "x"}, **auth).status_code == 403


@pytest.mark.django_db
def test_operator_replays_and_starts_runs_but_manages_no_provider(client, provider) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Token {token('otto', '--create-user', '--role', 'operator')}"}
    for endpoint in READS:
        assert client.get(f"/api/{endpoint}/", **auth).status_code == 200, endpoint
    assert client.post("/api/events/replay/?status=dead", **auth).status_code == 202
    started = client.post("/api/sync-runs/", {"provider": provider.pk, "kind": "dry_run"},
                          content_type="application/json", **auth)
    assert started.status_code == 409  # allowed; the noop driver has nothing to list
    assert b"does not support full sync" in started.content
    created = client.post("/api/cloud-providers/", {"name": "x", "cloud_sync_driver": "noop"},
                          content_type="application/json", **auth)
    assert created.status_code == 403
    rotate = client.post(f"/api/cloud-providers/{provider.pk}/rotate-secret/", **auth)
    assert rotate.status_code == 403


@pytest.mark.django_db
def test_roles_are_groups_created_once_and_kept() -> None:
    token("a", "--create-user", "--role", "reader")
    token("b", "--create-user", "--role", "reader")
    token("a", "--role", "operator")  # an existing user gets another role
    readers = Group.objects.get(name="cloudsync readers")
    assert readers.permissions.count() == 10
    assert Group.objects.get(name="cloudsync operators").permissions.count() == 13
    assert set(User.objects.get(username="a").groups.values_list("name", flat=True)) == {
        "cloudsync readers", "cloudsync operators"
    }
    assert not User.objects.get(username="b").is_superuser
