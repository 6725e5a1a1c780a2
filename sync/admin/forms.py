"""Admin forms.

``CloudProviderForm`` edits ``client_config`` write-only: the textarea is
always rendered empty (the stored credentials never travel back to the
browser), its help text lists the keys currently set, an empty submission
keeps the stored configuration and JSON replaces it. The driver is a choice
among the registered drivers; the model's ``clean()`` validates the config
against the driver and its errors land on the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join

from sync.drivers.registry import registered_names
from sync.models import CloudProvider

__all__ = ["CloudProviderForm", "WriteOnlyTextarea", "describe_config_keys"]

KEEP_HELP = "Leave empty to keep the current configuration; entering JSON replaces it."
NEW_HELP = "Driver client configuration as a JSON object (stored encrypted, never shown again)."


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value (like ``PasswordInput``)."""

    def format_value(self, value: Any) -> str | None:
        return None


def describe_config_keys(config: Any) -> str:
    """Help text naming the keys of a stored config (never the values)."""
    if not isinstance(config, Mapping) or not config:
        return "No configuration is set. " + NEW_HELP
    keys = format_html_join(", ", "<code>{}</code>", ((k,) for k in sorted(map(str, config))))
    return format_html("Keys currently set: {}. {}", keys, KEEP_HELP)


def driver_choices(current: str = "") -> list[tuple[str, str]]:
    """Blank + every registered driver; an unknown current value stays visible."""
    names = registered_names()
    choices = [("", "---------")] + [(name, name) for name in names]
    if current and current not in names:
        choices.append((current, f"{current} (not installed)"))
    return choices


class CloudProviderForm(forms.ModelForm):
    cloud_sync_driver = forms.ChoiceField(
        required=False,
        label="Cloud sync driver",
        help_text="Registered driver; required when cloud sync is enabled.",
    )
    client_config = forms.CharField(
        required=False,
        label="Client config",
        strip=True,
        widget=WriteOnlyTextarea(
            attrs={"rows": 8, "cols": 80, "autocomplete": "off", "spellcheck": "false"}
        ),
    )

    class Meta:
        model = CloudProvider
        fields = ["name", "cloud_sync_enabled", "cloud_sync_driver", "client_config"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        has_pk = instance is not None and instance.pk is not None
        if "cloud_sync_driver" in self.fields:
            current = instance.cloud_sync_driver if has_pk else ""
            self.fields["cloud_sync_driver"].choices = driver_choices(current)
        if "client_config" in self.fields:
            # The initial value must never be the stored config, even if a
            # widget were swapped for one that renders its value.
            self.initial["client_config"] = ""
            self.fields["client_config"].help_text = (
                describe_config_keys(instance.client_config) if has_pk else NEW_HELP
            )

    def clean_client_config(self) -> dict[str, Any] | None:
        """``None`` keeps the stored config; otherwise the parsed JSON object."""
        raw = self.cleaned_data.get("client_config") or ""
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            # The position, not the text: the input may hold credentials.
            raise forms.ValidationError(
                "Invalid JSON: %(msg)s (line %(line)s, column %(col)s).",
                code="invalid_json",
                params={"msg": exc.msg, "line": exc.lineno, "col": exc.colno},
            ) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(
                "The client configuration must be a JSON object ({...}), not %(kind)s.",
                code="not_object",
                params={"kind": type(value).__name__},
            )
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("client_config") is None:
            # Absent from cleaned_data, construct_instance() leaves the
            # instance's stored config alone and the model's clean() validates
            # that one against the (possibly new) driver.
            cleaned.pop("client_config", None)
        return cleaned
