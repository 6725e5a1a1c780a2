"""``cloudsync_create_token <username>``: print an API token for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the REST API token of a user (created on first use). Use it as "
        "'Authorization: Token <key>'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--superuser", action="store_true", help="Make the user a superuser (and staff)."
        )
        parser.add_argument(
            "--reset", action="store_true", help="Replace an existing token with a new one."
        )

    @transaction.atomic
    def handle(
        self,
        *args: Any,
        username: str,
        create_user: bool,
        superuser: bool,
        reset: bool,
        **options: Any,
    ) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            if not create_user:
                raise CommandError(
                    f"user {username!r} does not exist (pass --create-user to create it)"
                ) from None
            user = User.objects.create_user(**{User.USERNAME_FIELD: username})
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"created user {username!r} (no password: token access only)")
        if superuser and not user.is_superuser:
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
            self.stderr.write(f"{username!r} is now a superuser")
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
