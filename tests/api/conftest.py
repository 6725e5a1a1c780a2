"""API test fixtures: users per role with tokens, an authenticated client factory,
inventory builders (plain ORM rows)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from project.celery import app as celery_app
from sync.models import CloudFlavor, CloudHost, CloudHostIP, CloudImage, CloudProject, CloudProvider

MODELS = (
    "cloudprovider",
    "cloudproject",
    "cloudflavor",
    "cloudimage",
    "cloudhost",
    "event",
    "syncrun",
)
VIEW_PERMS = [f"view_{m}" for m in MODELS]
ROLE_PERMS = {
    "reader": VIEW_PERMS,
    "operator": [*VIEW_PERMS, "change_event", "add_syncrun", "change_syncrun"],
}
ROLES = ("anonymous", "reader", "operator", "admin")
# The list + detail endpoints under /api/ (the permission matrix and the schema check each).
READ_ENDPOINTS = [
    "cloud-providers",
    "cloud-projects",
    "cloud-flavors",
    "cloud-images",
    "cloud-hosts",
    "events",
    "sync-runs",
]


@pytest.fixture(autouse=True)
def broker():
    """The test process's own Redis (tests/conftest.py), emptied around each test;
    yields a client to inspect the queues."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(autouse=True)
def api_fake_driver(settings):
    from sync.drivers.registry import reset_registry

    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.ConfiguredDriver"]
    reset_registry()
    yield
    reset_registry()


def make_user(role: str) -> User:
    if role == "admin":
        return User.objects.create_superuser(f"api-{role}", password="pw-admin-123")
    user = User.objects.create_user(f"api-{role}", password=f"pw-{role}-123")
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="sync", codename__in=ROLE_PERMS[role])
    )
    return user


@pytest.fixture
def client_for(db) -> Callable[[str], APIClient]:
    """An APIClient authenticated by token as the given role ("anonymous": none)."""
    cache: dict[str, APIClient] = {}

    def make(role: str) -> APIClient:
        if role not in cache:
            client = APIClient()
            if role != "anonymous":
                token = Token.objects.create(user=make_user(role))
                client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
            cache[role] = client
        return cache[role]

    return make


@pytest.fixture
def admin_api(client_for) -> APIClient:
    return client_for("admin")


_ids = itertools.count(1)


@pytest.fixture
def host_factory(db) -> Callable[..., CloudHost]:
    """A host with flavor, image, project and addresses, built with the ORM."""

    def make(
        provider: CloudProvider,
        *,
        ips: tuple[str, ...] = (),
        with_refs: bool = True,
        **fields: Any,
    ) -> CloudHost:
        n = next(_ids)
        if with_refs:
            fields.setdefault(
                "cloudflavor",
                CloudFlavor.all_objects.create(
                    cloudprovider=provider, flavor_id=f"f{n}", name=f"m1.{n}"
                ),
            )
            fields.setdefault(
                "image",
                CloudImage.all_objects.create(
                    cloudprovider=provider, image_id=f"i{n}", name=f"img{n}"
                ),
            )
            fields.setdefault(
                "project",
                CloudProject.all_objects.create(
                    cloudprovider=provider, project_id=f"p{n}", name=f"proj{n}"
                ),
            )
        fields.setdefault("host_id", f"host-{n}")
        fields.setdefault("hostname", f"vm-{n}")
        fields.setdefault("status", "active")
        host = CloudHost.all_objects.create(cloudprovider=provider, **fields)
        for address in ips:
            CloudHostIP.objects.create(
                host=host, address=address, version=6 if ":" in address else 4
            )
        return host

    return make
