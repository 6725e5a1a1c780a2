"""Shared helpers of the operator commands."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.core.management.base import CommandError

from sync.models import CloudProvider

# The API's roles (docs/api.md, "Permissions"): readers see everything the
# API lists; operators also replay events, start runs and apply stored plans.
# Managing providers (and their secrets) is left to superusers.
VIEW_MODELS = (
    "cloudprovider", "cloudproject", "cloudflavor", "cloudimage", "cloudhost", "cloudport", "event",
    "syncrun", "historyentry", "purgerun",
)
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "reader": ("cloudsync readers", tuple(f"view_{model}" for model in VIEW_MODELS)),
    "operator": (
        "cloudsync operators",
        (*(f"view_{model}" for model in VIEW_MODELS), "change_event", "add_syncrun", "change_syncrun"),
    ),
}


def provider_arg(value: str) -> CloudProvider:
    """A provider by id or by name, or a clear error."""
    qs = CloudProvider.objects.all()
    provider = qs.filter(pk=int(value)).first() if value.isdigit() else None
    provider = provider or qs.filter(name=value).first()
    if provider is None:
        raise CommandError(f"no cloud provider with id or name {value!r}")
    return provider


def role_group(role: str) -> Group:
    """The group of an API role, created (or completed) with its permissions."""
    name, codenames = ROLES[role]
    perms = list(Permission.objects.filter(content_type__app_label="sync", codename__in=codenames))
    missing = set(codenames) - {p.codename for p in perms}
    if missing:
        raise CommandError(f"permissions {sorted(missing)} do not exist: run `manage.py migrate` first")
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.add(*perms)
    return group
