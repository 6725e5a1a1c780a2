"""The cloud provider: one configured cloud (region/account) and its webhook endpoint."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from sync import crypto
from sync.fields import EncryptedJSONField, EncryptedTextField

__all__ = ["CloudProvider"]


class CloudProvider(models.Model):
    """A cloud whose inventory is synchronized (Ralph's CloudProvider)."""

    name = models.CharField(max_length=100, unique=True)
    cloud_sync_enabled = models.BooleanField(default=False)
    cloud_sync_driver = models.CharField(
        max_length=100, blank=True, help_text="Registered driver name, e.g. openstack.ocata"
    )
    client_config = EncryptedJSONField(
        blank=True, default=dict, help_text="Driver client configuration (stored encrypted)"
    )
    endpoint_secret = EncryptedTextField(blank=True, default="", editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)
    # Status, written by the worker (never by the webhook request).
    last_event_received_at = models.DateTimeField(null=True, blank=True)
    last_event_processed_at = models.DateTimeField(null=True, blank=True)
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    last_full_sync_status = models.CharField(max_length=20, blank=True, default="")
    # What the last complete listing vouches for without rewriting unchanged
    # rows, and the running listing's (sync.apply.floors).
    listing_floors = models.JSONField(blank=True, default=dict, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_endpoint_path(self) -> str:
        return reverse("cloudsync-endpoint", kwargs={"provider_id": self.pk})

    def rotate_secret(self) -> str:
        """Generate, store and return a new endpoint secret (shown to the admin once)."""
        self.endpoint_secret = crypto.new_secret()
        CloudProvider.objects.filter(pk=self.pk).update(endpoint_secret=self.endpoint_secret)
        return self.endpoint_secret

    def clean(self) -> None:
        from sync.drivers.base import ConfigError, DriverNotInstalled
        from sync.drivers.registry import get_driver, registered_names

        errors: dict[str, Any] = {}
        name = (self.cloud_sync_driver or "").strip()
        self.cloud_sync_driver = name
        if self.cloud_sync_enabled and not name:
            errors["cloud_sync_driver"] = "A driver is required when cloud sync is enabled."
        elif name:
            try:
                driver = get_driver(name)
            except DriverNotInstalled:
                errors["cloud_sync_driver"] = (
                    f"Unknown driver {name!r}; registered: {', '.join(registered_names())}."
                )
            else:
                try:
                    self.client_config = driver.validate_config(self.client_config or {})
                except ConfigError as exc:
                    errors["client_config"] = [f"{k}: {v}" for k, v in exc.errors.items()]
        if errors:
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.endpoint_secret:
            self.endpoint_secret = crypto.new_secret()
        super().save(*args, **kwargs)
