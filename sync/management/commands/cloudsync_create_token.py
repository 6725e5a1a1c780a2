"""``cloudsync_create_token <username>``: print an API token for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from sync.management.commands._common import ROLES, role_group


class Command(BaseCommand):
    help = (
        "Print the REST API token of a user (created on first use). Use it as "
        "'Authorization: Token <key>'. A new user has no permission: give it a "
        "--role (reader: GET everything; operator: also replay events, start "
        "runs, apply plans) or --superuser."
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
            "--role",
            choices=sorted(ROLES),
            help="Add the user to the role's group (created with its permissions if needed): "
            + "; ".join(f"{role}: '{name}'" for role, (name, _) in sorted(ROLES.items())),
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
        role: str | None = None,
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
        if role:
            group = role_group(role)
            user.groups.add(group)
            self.stderr.write(f"{username!r} is in the group {group.name!r} ({role})")
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
