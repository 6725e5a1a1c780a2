"""Object history in the admin: a "History" section on every inventory page,
the objects an event or a run changed on their pages, the history list, and
the retention purges with the settings in force."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from sync import retention
from sync.admin.common import EstimatedCountPaginator, ReadOnlyAdminMixin, pretty_json
from sync.changes import Kind
from sync.models import HistoryEntry, PurgeRun

__all__ = ["HistoryEntryAdmin", "PurgeRunAdmin", "changed_objects", "object_history"]

SHOWN = 50  # entries rendered on an object, event or run page
MODEL_OF_KIND = {
    "host": "cloudhost",
    "flavor": "cloudflavor",
    "image": "cloudimage",
    "project": "cloudproject",
    "host_ip": "cloudport",
}


def _admin_url(name: str, pk: int | None) -> str | None:
    if pk is None:
        return None
    try:
        return reverse(f"admin:sync_{name}_change", args=[pk])
    except NoReverseMatch:
        return None


def _value(value: Any) -> str:
    if value in (None, "", [], {}):
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def changes_html(entry: HistoryEntry) -> SafeString:
    return format_html_join(
        "",
        "<div><b>{}</b>: {} → {}</div>",
        ((name, _value(before), _value(after)) for name, (before, after) in entry.changes.items()),
    )


def cause_html(entry: HistoryEntry) -> SafeString:
    """The cause, linked to the event or run page while it exists."""
    label = entry.get_cause_display()
    if entry.event_id is not None:
        url = _admin_url("event", entry.event_id)
        text = f"event #{entry.event_id} {entry.event_type}".strip()
        if entry.occurred_at:
            text += f" (occurred {entry.occurred_at:%Y-%m-%d %H:%M:%S})"
        return format_html('<a href="{}">{}</a>', url, text) if url else format_html("{}", text)
    if entry.run_id is not None:
        url = _admin_url("syncrun", entry.run_id)
        text = f"{label} #{entry.run_id}" + (f" by {entry.actor}" if entry.actor else "")
        return format_html('<a href="{}">{}</a>', url, text)
    return format_html("{}", label)


def object_html(entry: HistoryEntry) -> SafeString:
    url = _admin_url(MODEL_OF_KIND.get(entry.kind, ""), entry.object_pk)
    text = f"{entry.kind} {entry.external_id}"
    return format_html('<a href="{}">{}</a>', url, text) if url else format_html("{}", text)


def _table(entries: list[HistoryEntry], total: int, more_url: str, *, objects: bool) -> str:
    if not entries:
        return "—"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                f"{e.applied_at:%Y-%m-%d %H:%M:%S}",
                object_html(e) if objects else e.get_action_display(),
                changes_html(e) if not objects else e.get_action_display(),
                cause_html(e) if not objects else changes_html(e),
            )
            for e in entries
        ),
    )
    head = (
        ("applied", "object", "action", "changes")
        if objects
        else ("applied", "action", "changes", "cause")
    )
    more = ""
    if total > len(entries):
        more = format_html('<p><a href="{}">all {} entries →</a></p>', more_url, total)
    return format_html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}",
        format_html_join("", "<th>{}</th>", ((h,) for h in head)),
        rows,
        more,
    )


def object_history(kind: str, pk: int | None) -> str:
    """The newest entries of one object, as a table (its page's History section)."""
    if pk is None:
        return "—"
    qs = HistoryEntry.objects.filter(kind=kind, object_pk=pk).order_by("-applied_at", "-id")
    entries = list(qs[:SHOWN])
    total = len(entries) if len(entries) < SHOWN else qs.count()
    url = reverse("admin:sync_historyentry_changelist") + f"?kind={kind}&object_pk={pk}"
    return _table(entries, total, url, objects=False)


def changed_objects(**cause: int) -> str:
    """The objects an event (``event_id=``) or a run (``run_id=``) changed
    (the history list takes ``?event=`` / ``?run=``, ``?kind=&object_pk=``)."""
    qs = HistoryEntry.objects.filter(**cause).order_by("applied_at", "id")
    entries = list(qs[:SHOWN])
    total = len(entries) if len(entries) < SHOWN else qs.count()
    ((name, value),) = cause.items()
    url = reverse("admin:sync_historyentry_changelist") + f"?{name.removesuffix('_id')}={value}"
    return _table(entries, total, url, objects=True)


class KindListFilter(admin.SimpleListFilter):
    """The object kinds, a fixed list (a filter on the plain ``kind`` column
    would list them with a SELECT DISTINCT over the whole table)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(k.value, "port" if k is Kind.HOST_IP else k.value) for k in Kind]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(kind=value) if value else queryset


@admin.register(HistoryEntry)
class HistoryEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("applied_at", "object_link", "action", "changes_summary", "cause_link")
    list_filter = ("cause", "action", KindListFilter, "cloudprovider")
    search_fields = ("external_id", "event_type")
    list_per_page = 100
    # No COUNT(*) over the whole table: not for the "of N total" line, and the
    # result count is bounded or estimated (sync.admin.common).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "cloudprovider",
        "kind",
        "object_link",
        "external_id",
        "applied_at",
        "action",
        "changes_summary",
        "cause_link",
        "event_type",
        "occurred_at",
        "actor",
    )
    readonly_fields = ("object_link", "changes_summary", "cause_link")

    @admin.display(description="object")
    def object_link(self, obj: HistoryEntry) -> str:
        return object_html(obj)

    @admin.display(description="changes")
    def changes_summary(self, obj: HistoryEntry) -> str:
        return changes_html(obj)

    @admin.display(description="cause")
    def cause_link(self, obj: HistoryEntry) -> str:
        return cause_html(obj)


@admin.register(PurgeRun)
class PurgeRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each retention purge; the list page shows the settings in force."""

    list_display = ("started_at", "finished_at", "removed_summary", "batches", "error")
    fields = ("started_at", "finished_at", "batches", "error", "removed_pretty", "settings_pretty")
    readonly_fields = ("removed_pretty", "settings_pretty")
    change_list_template = "admin/sync/purgerun/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        context = {
            "retention_settings": retention.retention_settings(),
            "last_purge": retention.last_purge(),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    @admin.display(description="removed")
    def removed_summary(self, obj: PurgeRun) -> str:
        return ", ".join(f"{k}: {v}" for k, v in (obj.removed or {}).items()) or "—"

    @admin.display(description="removed")
    def removed_pretty(self, obj: PurgeRun) -> str:
        return pretty_json(obj.removed)

    @admin.display(description="settings and cutoffs")
    def settings_pretty(self, obj: PurgeRun) -> str:
        return pretty_json(obj.settings)
