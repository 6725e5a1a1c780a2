"""API permissions: Django model permissions, reads included.

DRF's ``DjangoModelPermissions`` lets any authenticated user read; here GET
needs the model's ``view_`` permission too, and actions that are not plain
CRUD (replay, apply, rotate-secret) name the permissions they need in the
viewset's ``action_permissions``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request

__all__ = ["ModelPermissions"]

VIEW = "%(app_label)s.view_%(model_name)s"


class ModelPermissions(DjangoModelPermissions):
    """Model permissions for every method; per-action overrides from the view."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": [VIEW],
        "OPTIONS": [VIEW],
        "HEAD": [VIEW],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        action_perms = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if action_perms is None:
            return super().has_permission(request, view)
        if not request.user or not request.user.is_authenticated:
            return False
        return request.user.has_perms(action_perms)
