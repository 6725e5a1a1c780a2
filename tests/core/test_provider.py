"""Provider configuration rules: driver required when enabled, config validated, encrypted at rest."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from sync.models import CloudProvider

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _test_driver(settings):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver"]


def test_enabled_provider_needs_a_driver():
    provider = CloudProvider(name="x", cloud_sync_enabled=True)
    with pytest.raises(ValidationError) as exc:
        provider.full_clean()
    assert "cloud_sync_driver" in exc.value.message_dict


def test_unknown_driver_is_rejected_with_the_known_names():
    provider = CloudProvider(name="x", cloud_sync_enabled=True, cloud_sync_driver="nope")
    with pytest.raises(ValidationError) as exc:
        provider.full_clean()
    message = exc.value.message_dict["cloud_sync_driver"][0]
    assert "nope" in message and "noop" in message and "test.hosts" in message


def test_bad_client_config_for_the_driver_cannot_be_saved():
    provider = CloudProvider(name="x", cloud_sync_enabled=True, cloud_sync_driver="test.hosts",
                             client_config={"zone": "a"})
    with pytest.raises(ValidationError) as exc:
        provider.full_clean()
    assert exc.value.message_dict["client_config"] == ["region: is required"]
    assert not CloudProvider.objects.exists()


def test_client_config_and_secret_are_encrypted_at_rest():
    provider = CloudProvider(name="x", cloud_sync_enabled=True, cloud_sync_driver="test.hosts",
                             client_config={"region": "r1", "password": "hunter2-distinctive"})
    provider.full_clean()
    provider.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_config, endpoint_secret FROM sync_cloudprovider WHERE id = %s", [provider.pk])
        raw_config, raw_secret = cursor.fetchone()
    assert "hunter2-distinctive" not in raw_config and "region" not in raw_config
    assert provider.endpoint_secret not in raw_secret
    again = CloudProvider.objects.get(pk=provider.pk)
    assert again.client_config == {"region": "r1", "password": "hunter2-distinctive"}


def test_rotate_secret_replaces_it():
    provider = CloudProvider.objects.create(name="x")
    old = provider.endpoint_secret
    new = provider.rotate_secret()
    assert new != old
    assert CloudProvider.objects.get(pk=provider.pk).endpoint_secret == new
