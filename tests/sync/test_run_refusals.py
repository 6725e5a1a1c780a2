"""One rule decides whether a run may start (``runs.check_can_start``), and
every entry point (API, admin, ``cloudsync_sync``, beat) gives the same
refusal, recording nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync.models import CloudProvider, SyncRun
from sync.tasks import sync_all

pytestmark = pytest.mark.django_db

CASES = ("disabled", "noop", "not installed")


@pytest.fixture(params=CASES)
def refused(request, provider_factory) -> tuple[CloudProvider, str]:
    """A provider that may not start a full sync, and the reason given."""
    if request.param == "disabled":
        provider = provider_factory(cloud_sync_enabled=False, cloud_sync_driver="noop")
        return provider, f"cloud sync is disabled for provider {provider}"
    provider = provider_factory(cloud_sync_driver="noop")
    if request.param == "noop":
        return provider, "driver 'noop' does not support full sync"
    CloudProvider.objects.filter(pk=provider.pk).update(cloud_sync_driver="gone.driver")
    provider.refresh_from_db()
    return provider, "driver 'gone.driver' is not installed"


def test_the_api_refuses_with_409(refused):
    provider, reason = refused
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = api.post("/api/sync-runs/", {"provider": provider.pk, "kind": "full"},
                        format="json")
    assert (response.status_code, response.json()["detail"]) == (409, reason)
    assert not SyncRun.objects.exists()


def test_the_admin_action_refuses(refused, admin_client):
    provider, reason = refused
    response = admin_client.post(
        reverse("admin:sync_cloudprovider_changelist"),
        {"action": "sync_now", "_selected_action": [provider.pk]}, follow=True,
    )
    texts = [str(m.message) for m in response.context["messages"]]
    assert texts == [f"{provider}: Full sync refused: {reason}"]
    assert not SyncRun.objects.exists()


def test_the_command_refuses(refused):
    provider, reason = refused
    with pytest.raises(CommandError) as exc:
        call_command("cloudsync_sync", str(provider.pk))
    assert str(exc.value) == f"{provider}: {reason}"
    assert not SyncRun.objects.exists()


def test_beat_skips_with_the_reason(refused):
    provider, reason = refused
    assert sync_all.run("full") == {provider.name: f"skipped: {reason}"}
    assert not SyncRun.objects.exists()


def test_a_dry_run_and_a_catch_up_are_refused_alike(provider_factory):
    provider = provider_factory(cloud_sync_driver="noop")
    for option, what in (("--dry-run", "full sync"), ("--catch-up", "catch-up")):
        with pytest.raises(CommandError, match=f"driver 'noop' does not support {what}"):
            call_command("cloudsync_sync", str(provider.pk), option)
    assert not SyncRun.objects.exists()
