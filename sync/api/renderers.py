"""Renderers of the API: JSON, and the browsable API without echoing secrets."""

from __future__ import annotations

from typing import Any

from rest_framework import renderers, serializers

__all__ = ["BrowsableAPIRenderer", "JSONRenderer"]

JSONRenderer = renderers.JSONRenderer


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF re-renders a rejected submission into the HTML form, write-only
    fields included (``client_config`` credentials would be echoed back).
    Such a form is rendered from the stored object instead."""

    def render_form_for_serializer(self, serializer: serializers.BaseSerializer) -> Any:
        initial = getattr(serializer, "initial_data", None)
        fields = getattr(serializer, "fields", {})
        if isinstance(initial, dict) and any(
            field.write_only and name in initial for name, field in fields.items()
        ):
            serializer = type(serializer)(instance=serializer.instance, context=serializer.context)
        return super().render_form_for_serializer(serializer)
