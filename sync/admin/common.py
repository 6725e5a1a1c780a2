"""Shared admin pieces: read-only admins, the tombstone filter, JSON display."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

__all__ = ["DeletedListFilter", "ReadOnlyAdminMixin", "pretty_json"]


def pretty_json(value: Any) -> str:
    """A JSON value as an indented ``<pre>`` block (escaped)."""
    if value in (None, "", {}, []):
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


class ReadOnlyAdminMixin:
    """View-only in the admin: no add, change or delete (rows are written by sync)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeletedListFilter(admin.SimpleListFilter):
    """Live rows by default; tombstones (``deleted_at`` set) on demand."""

    title = "deleted"
    parameter_name = "deleted"
    default = "live"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("deleted", "Deleted"), ("all", "All")]

    def current(self) -> str:
        value = self.value()
        return value if value in ("live", "deleted", "all") else self.default

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.current() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        current = self.current()
        if current == "live":
            return queryset.filter(deleted_at__isnull=True)
        if current == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset
