"""``cloudsync_create_token``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token


def run(*args: str) -> str:
    out = StringIO()
    call_command("cloudsync_create_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.mark.django_db
def test_creates_user_and_token(client):
    key = run("robot", "--create-user", "--superuser")
    user = User.objects.get(username="robot")
    assert user.is_superuser and not user.has_usable_password()
    assert Token.objects.get(user=user).key == key
    assert run("robot") == key  # stable until --reset
    new = run("robot", "--reset")
    assert new != key
    assert client.get("/api/cloud-hosts/", HTTP_AUTHORIZATION=f"Token {new}").status_code == 200


@pytest.mark.django_db
def test_unknown_user_without_create_fails():
    with pytest.raises(CommandError, match="does not exist"):
        run("ghost")
