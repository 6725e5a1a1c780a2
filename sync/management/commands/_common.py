"""Shared helpers of the operator commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from sync.models import CloudProvider


def provider_arg(value: str) -> CloudProvider:
    """A provider by id or by name, or a clear error."""
    qs = CloudProvider.objects.all()
    provider = qs.filter(pk=int(value)).first() if value.isdigit() else None
    provider = provider or qs.filter(name=value).first()
    if provider is None:
        raise CommandError(f"no cloud provider with id or name {value!r}")
    return provider
