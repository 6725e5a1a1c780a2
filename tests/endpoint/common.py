"""What the endpoint tests share: the webhook path and a minimal message.

The fixtures around them (``empty_queue``, ``runserver``) are in
tests/conftest.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.models import CloudProvider

MESSAGE = {"message_id": "m-1", "event_type": "compute.instance.update", "payload": {}}


def endpoint_path(provider: CloudProvider) -> str:
    """The provider's webhook path (``/cloud-sync/provider/<pk>/``)."""
    return f"/cloud-sync/provider/{provider.pk}/"
