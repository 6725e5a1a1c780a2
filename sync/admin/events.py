"""The event inbox and the sync-run journal: read-only pages with operator
actions (replay failed/dead events, apply a stored plan)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sync.admin.common import EstimatedCountPaginator, ReadOnlyAdminMixin, pretty_json
from sync.admin.history import changed_objects
from sync.choices import EventStatusChoices as EventStatus
from sync.errors import PlanNotApplicable
from sync.ingest import request_replay
from sync.models import Event, SyncRun
from sync.progress import describe
from sync.runs import release_runs, request_plan_apply

__all__ = ["EventAdmin", "SyncRunAdmin"]

log = logging.getLogger(__name__)

# Plans of large clouds can hold thousands of objects: cap what one page renders.
MAX_PRETTY_CHARS = 200_000


def _capped_json(value: Any) -> str:
    html = pretty_json(value)
    if len(html) <= MAX_PRETTY_CHARS:
        return html
    return pretty_json(
        {"note": f"too large to display ({len(html)} characters); use the API or the command"}
    )


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "key",
        "event_type",
        "status",
        "cloudprovider",
        "attempts",
        "received_at",
        "processed_at",
        "short_error",
    )
    # (no event_type filter: its choices are a DISTINCT over the whole inbox;
    # search by type instead)
    list_filter = ("status", "cloudprovider")
    list_select_related = ("cloudprovider",)
    search_fields = ("key", "=event_type")
    list_per_page = 100
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # no COUNT(*) over millions of inbox rows
    actions = ("replay",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "cloudprovider",
                    "key",
                    "event_type",
                    "status",
                    "attempts",
                    "occurred_at",
                    "received_at",
                    "processed_at",
                    "created_at",
                )
            },
        ),
        ("Outcome", {"fields": ("error", "result_pretty")}),
        ("Objects it changed", {"fields": ("changed",)}),
        ("Body", {"fields": ("body_pretty",)}),
    )
    readonly_fields = ("result_pretty", "body_pretty", "changed")

    @admin.display(description="changes")
    def changed(self, obj: Event) -> str:
        return changed_objects(event_id=obj.pk)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            qs = qs.defer("body", "result")
        return qs

    @admin.display(description="error")
    def short_error(self, obj: Event) -> str:
        return obj.error if len(obj.error) <= 80 else obj.error[:79] + "…"

    @admin.display(description="body")
    def body_pretty(self, obj: Event) -> str:
        return _capped_json(obj.body)

    @admin.display(description="result")
    def result_pretty(self, obj: Event) -> str:
        return _capped_json(obj.result)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_event")

    @admin.action(description="Replay selected failed/dead events", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = list(queryset.values_list("pk", "status"))
        candidates = [
            pk for pk, status in selected if status in (EventStatus.FAILED, EventStatus.DEAD)
        ]
        skipped = len(selected) - len(candidates)
        if candidates:
            try:
                replayed = request_replay(candidates)
            except Exception as exc:  # broker down: say so rather than a 500
                log.exception("replay of events %s could not be queued", candidates)
                self.message_user(
                    request,
                    f"Replay could not be queued: {type(exc).__name__}: {exc}",
                    messages.ERROR,
                )
                return
            if replayed:
                self.message_user(
                    request,
                    f"{len(replayed)} event(s) reopened and queued for replay.",
                    messages.SUCCESS,
                )
            skipped += len(candidates) - len(replayed)
        if skipped:
            self.message_user(
                request,
                f"{skipped} event(s) skipped: only failed or dead events are replayed.",
                messages.WARNING,
            )


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "cloudprovider",
        "kind",
        "status",
        "started_at",
        "finished_at",
        "drift_healed",
        "progress_summary",
        "triggered_by",
    )
    list_display_links = ("id", "cloudprovider")
    list_filter = ("status", "kind", "cloudprovider")
    list_select_related = ("cloudprovider",)
    search_fields = ("cloudprovider__name", "triggered_by")
    date_hierarchy = "started_at"
    show_full_result_count = False
    actions = ("apply_stored_plan", "release_running")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "cloudprovider",
                    "kind",
                    "status",
                    "triggered_by",
                    "started_at",
                    "finished_at",
                    "drift_healed",
                    "progress_summary",
                    "error",
                )
            },
        ),
        ("Progress", {"fields": ("progress_pretty",)}),
        ("Counts", {"fields": ("counts_pretty",)}),
        ("Drift healed", {"fields": ("drift_pretty",)}),
        ("Plan", {"fields": ("plan_pretty",)}),
        ("Objects it changed", {"fields": ("changed",)}),
    )
    readonly_fields = ("progress_summary", "progress_pretty", "counts_pretty", "drift_pretty",
                       "plan_pretty", "changed")

    @admin.display(description="changes")
    def changed(self, obj: SyncRun) -> str:
        return changed_objects(run_id=obj.pk)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            qs = qs.defer("plan", "drift")
        return qs

    @admin.display(description="progress")
    def progress_summary(self, obj: SyncRun) -> str:
        return describe(obj.progress)

    @admin.display(description="progress")
    def progress_pretty(self, obj: SyncRun) -> str:
        return _capped_json(obj.progress)

    @admin.display(description="counts")
    def counts_pretty(self, obj: SyncRun) -> str:
        return _capped_json(obj.counts)

    @admin.display(description="drift")
    def drift_pretty(self, obj: SyncRun) -> str:
        return _capped_json(obj.drift)

    @admin.display(description="plan")
    def plan_pretty(self, obj: SyncRun) -> str:
        return _capped_json(obj.plan)

    def has_apply_plan_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_syncrun")

    @admin.action(description="Apply stored plan", permissions=["apply_plan"])
    def apply_stored_plan(self, request: HttpRequest, queryset: QuerySet) -> None:
        who = f"admin:{request.user.get_username()}"
        for run in queryset.select_related("cloudprovider"):
            try:
                request_plan_apply(run, triggered_by=who)
            except PlanNotApplicable as exc:
                self.message_user(request, str(exc), messages.ERROR)
            except Exception as exc:  # broker down
                log.exception("apply of run %s's plan could not be queued", run.pk)
                self.message_user(
                    request,
                    f"run #{run.pk}: could not queue the apply: {type(exc).__name__}: {exc}",
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request, f"Apply of run #{run.pk}'s stored plan queued.", messages.SUCCESS
                )

    @admin.action(
        description="Mark running runs as failed (release the lock)", permissions=["apply_plan"]
    )
    def release_running(self, request: HttpRequest, queryset: QuerySet) -> None:
        """For a run whose worker died: fail it now so the provider can sync again."""
        released = release_runs(queryset, by=f"admin:{request.user.get_username()}")
        self.message_user(request, f"{released} running run(s) marked failed.", messages.SUCCESS)
