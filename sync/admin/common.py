"""Shared admin pieces: read-only admins, the tombstone filter, JSON display,
a paginator that never counts a whole large table."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

__all__ = ["DeletedListFilter", "EstimatedCountPaginator", "ReadOnlyAdminMixin", "pretty_json"]


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


class EstimatedCountPaginator(Paginator):
    """Counts at most ``exact_up_to`` rows (``SELECT COUNT(*) FROM (... LIMIT
    n+1)``); beyond that, an unfiltered list takes Postgres' estimate of the
    table's rows (``pg_class.reltuples``, kept by autovacuum/ANALYZE) instead
    of a ``COUNT(*)`` over millions of rows. A filtered list beyond the bound
    is counted (its filter narrows the scan). Use with
    ``show_full_result_count = False``."""

    exact_up_to = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        bounded = qs.order_by()[: self.exact_up_to + 1].count()
        if bounded <= self.exact_up_to:
            return bounded
        if qs.query.where or connections[qs.db].vendor != "postgresql":
            return qs.count()
        with connections[qs.db].cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                [qs.model._meta.db_table],
            )
            row = cursor.fetchone()
        return max(int(row[0] if row else 0), bounded)
