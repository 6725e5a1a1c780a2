"""The status pages (``/status/`` and ``/status/<provider id>/``): the admin's
login and look, staff only, plus the ``sync.view_cloudprovider`` permission.
The figures come from ``sync.status``; the charts from ``sync.charts``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache

from sync import charts, status
from sync.models import CloudProvider
from sync.rollups import OUTCOMES

__all__ = ["overview_page", "provider_page"]

PERMISSION = "sync.view_cloudprovider"


def _step(request: HttpRequest) -> int:
    try:
        step = int(request.GET.get("step", 300))
    except ValueError:
        return 300
    return step if step in status.STEPS else 300


def _event_charts(events: dict[str, Any]) -> dict[str, str]:
    times = [point["start"] for point in events["series"]]
    counts = charts.line_chart(
        "events", times, {o: [p[o] for p in events["series"]] for o in OUTCOMES},
        totals=events["totals"])
    lag = charts.line_chart(
        "lag", times,
        {k: [p[k] for p in events["series"]] for k in ("lag_p50_seconds", "lag_p99_seconds")},
        unit=" s",
        totals={"lag_p50_seconds": events["lag_p50_seconds"],
                "lag_p99_seconds": events["lag_p99_seconds"]})
    return {"events_chart": mark_safe(counts), "lag_chart": mark_safe(lag)}  # noqa: S308 - escaped in sync.charts


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    return {**admin.site.each_context(request), "title": title, "outcomes": OUTCOMES,
            "steps": status.STEPS, **extra}


def _dead_letters_url(provider_id: int) -> str:
    return (f"{reverse('admin:sync_event_changelist')}?cloudprovider__id__exact={provider_id}"
            "&status__exact=dead")


@never_cache
@staff_member_required
def overview_page(request: HttpRequest) -> HttpResponse:
    step = _step(request)
    data = status.overview(step=step)
    for row in data["providers"]:
        row["dead_letters_url"] = _dead_letters_url(row["id"])
    context = _context(request, "Sync status", data=data, step=step, **_event_charts(data["events"]))
    return TemplateResponse(request, "sync/status/overview.html", context)


@never_cache
@staff_member_required
def provider_page(request: HttpRequest, provider_id: int) -> HttpResponse:
    provider = get_object_or_404(CloudProvider, pk=provider_id)
    step = _step(request)
    data = status.provider_status(provider, step=step)
    context = _context(
        request, f"Sync status: {provider.name}", provider=provider, data=data, step=step,
        dead_letters_url=_dead_letters_url(provider.pk),
        coverage_chart=mark_safe(charts.coverage_bars(data["coverage"])),  # noqa: S308 - escaped in sync.charts
        **_event_charts(data["events"]))
    return TemplateResponse(request, "sync/status/provider.html", context)
