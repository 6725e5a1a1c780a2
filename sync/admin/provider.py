"""The CloudProvider admin: write-only credentials, endpoint secret shown
once (after add and after a rotation), and operator actions (sync now, dry
run, catch-up, test connection)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from sync.admin.forms import CloudProviderForm
from sync.choices import SyncRunKindChoices as RunKind
from sync.drivers.base import AuthError, ConfigError, DriverError, DriverNotInstalled, NetworkError
from sync.drivers.registry import get_driver
from sync.errors import RunInProgress, RunRefused
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    CloudProvider,
    Event,
    SyncRun,
)
from sync.runs import start_run

__all__ = ["CloudProviderAdmin", "check_provider_connection", "endpoint_url"]

log = logging.getLogger(__name__)

SECRET_MASK = "•••• (set)"
OWNED_MODELS = (CloudHost, CloudPort, CloudFlavor, CloudImage, CloudProject, Event, SyncRun)
STATUS_FIELDS = (
    "last_event_received_at",
    "last_event_processed_at",
    "last_full_sync_at",
    "last_full_sync_status",
    "created_at",
    "modified_at",
)


def endpoint_url(request: HttpRequest, provider: CloudProvider) -> str:
    """The absolute webhook URL of a provider, as seen by this request."""
    return request.build_absolute_uri(provider.get_endpoint_path())


def _triggered_by(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def check_provider_connection(provider: CloudProvider) -> tuple[bool, str]:
    """Run the driver's ``test_connection`` now; (ok, message for the operator)."""
    name = provider.cloud_sync_driver
    if not name:
        return False, "no driver configured"
    try:
        driver = get_driver(name)
    except DriverNotInstalled as exc:
        return False, str(exc)
    try:
        result = driver.test_connection(provider.client_config or {})
    except AuthError as exc:
        return False, f"authentication failed: {exc}"
    except NetworkError as exc:
        return False, f"network error: {exc}"
    except ConfigError as exc:
        return False, f"invalid client configuration: {exc}"
    except DriverError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    except NotImplementedError:
        return False, f"driver {name!r} cannot test a connection"
    except Exception as exc:  # a driver bug: say what happened, keep the admin up
        log.exception("test_connection of provider %s crashed", provider.pk)
        return False, f"unexpected error: {type(exc).__name__}: {exc}"
    summary = json.dumps(result, sort_keys=True, default=str) if result else "{}"
    if len(summary) > 500:
        summary = summary[:500] + "…"
    return True, summary


@admin.register(CloudProvider)
class CloudProviderAdmin(admin.ModelAdmin):
    form = CloudProviderForm
    list_display = (
        "name",
        "cloud_sync_enabled",
        "cloud_sync_driver",
        # + the endpoint URL (needs the request: see get_list_display)
        "last_event_received_at",
        "last_event_processed_at",
        "last_full_sync_at",
        "last_full_sync_status",
    )
    list_filter = ("cloud_sync_enabled", "cloud_sync_driver", "last_full_sync_status")
    search_fields = ("name",)
    readonly_fields = ("endpoint_url_display", "secret_display", *STATUS_FIELDS)
    actions = ("sync_now", "dry_run", "catch_up", "test_connection")
    main_fields = ("name", "cloud_sync_enabled", "cloud_sync_driver", "client_config")

    # -- pages -------------------------------------------------------------
    def get_fieldsets(self, request: HttpRequest, obj: CloudProvider | None = None) -> Any:
        main = (None, {"fields": self.main_fields})
        if obj is None:
            return (main,)
        return (
            main,
            ("Webhook endpoint", {"fields": ("endpoint_url_display", "secret_display")}),
            ("Status", {"fields": STATUS_FIELDS}),
        )

    def get_list_display(self, request: HttpRequest) -> Any:
        def endpoint(obj: CloudProvider) -> str:
            url = endpoint_url(request, obj)
            return format_html("<code>{}</code>", url)

        endpoint.short_description = "endpoint URL"  # type: ignore[attr-defined]
        display = list(super().get_list_display(request))
        display.insert(3, endpoint)
        return display

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: CloudProvider | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            # Read by endpoint_url_display (readonly fields get no request).
            obj._admin_endpoint_url = endpoint_url(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="endpoint URL")
    def endpoint_url_display(self, obj: CloudProvider) -> str:
        if obj.pk is None:
            return "—"
        url = getattr(obj, "_admin_endpoint_url", None) or obj.get_endpoint_path()
        return format_html("<code>{}</code>", url)

    @admin.display(description="endpoint secret")
    def secret_display(self, obj: CloudProvider) -> str:
        if obj.pk is None:
            return "—"
        state = SECRET_MASK if obj.endpoint_secret else "not set"
        rotate = reverse(f"{self.admin_site.name}:sync_cloudprovider_rotate_secret", args=[obj.pk])
        return format_html(
            '{} &nbsp; <a class="button" href="{}">Rotate secret…</a>'
            '<div class="help">Shown once when generated; rotating invalidates the current '
            "secret immediately.</div>",
            state,
            rotate,
        )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Counts instead of Django's nested list of every related row.

        A provider owns its inventory, inbox and runs (cascade). Listing them
        one by one would load millions of events, and the inventory admins
        being read-only would otherwise forbid the deletion altogether.
        """
        providers = list(objs)
        ids = [p.pk for p in providers]
        model_count = {CloudProvider._meta.verbose_name_plural: len(providers)}
        for model in OWNED_MODELS:
            count = model._base_manager.filter(cloudprovider__in=ids).count()
            if count:
                model_count[model._meta.verbose_name_plural] = count
        ips = CloudHostIP.objects.filter(
            Q(host__cloudprovider__in=ids) | Q(port__cloudprovider__in=ids)
        ).count()
        if ips:
            model_count[CloudHostIP._meta.verbose_name_plural] = ips
        summary = [
            format_html("{}: {} and everything it owns", self.opts.verbose_name.capitalize(), p)
            for p in providers
        ]
        return summary, model_count, set(), []

    # -- secret shown once ---------------------------------------------------
    def _announce_secret(
        self, request: HttpRequest, obj: CloudProvider, secret: str, what: str
    ) -> None:
        messages.success(
            request,
            format_html(
                "{} for “{}”. Webhook endpoint: <code>{}</code> — secret: <code>{}</code>. "
                "Copy the secret now: it will not be shown again.",
                what,
                obj.name,
                endpoint_url(request, obj),
                secret,
            ),
        )

    def response_add(
        self, request: HttpRequest, obj: CloudProvider, post_url_continue: str | None = None
    ) -> HttpResponse:
        if obj.endpoint_secret:
            self._announce_secret(request, obj, obj.endpoint_secret, "Endpoint secret generated")
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="sync_cloudprovider_rotate_secret",
            )
        ]
        return custom + super().get_urls()

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: confirmation page; POST (CSRF-checked): rotate, show the new secret once."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        change_url = reverse(f"{self.admin_site.name}:sync_cloudprovider_change", args=[obj.pk])
        if request.method == "POST":
            secret = obj.rotate_secret()
            self.log_change(request, obj, [{"changed": {"fields": ["endpoint secret"]}}])
            self._announce_secret(request, obj, secret, "Endpoint secret rotated")
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate the endpoint secret?",
            "opts": self.opts,
            "object": obj,
            "change_url": change_url,
            "endpoint_url": endpoint_url(request, obj),
        }
        return TemplateResponse(
            request, "admin/sync/cloudprovider/rotate_secret_confirmation.html", context
        )

    # -- actions -------------------------------------------------------------
    def _start(self, request: HttpRequest, queryset: QuerySet, kind: str) -> None:
        label = RunKind(kind).label
        for provider in queryset:
            try:
                run = start_run(provider, kind, triggered_by=_triggered_by(request))
            except RunInProgress as exc:
                self.message_user(request, f"{provider}: {exc}", messages.ERROR)
            except RunRefused as exc:
                self.message_user(request, f"{provider}: {label} refused: {exc}", messages.ERROR)
            except Exception as exc:  # e.g. the broker is unreachable
                log.exception("could not start a %s of provider %s", kind, provider.pk)
                self.message_user(
                    request,
                    f"{provider}: {label} could not be queued: {type(exc).__name__}: {exc}",
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request, f"{provider}: {label} queued (run #{run.pk}).", messages.SUCCESS
                )

    @admin.action(description="Sync now (full sync)", permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._start(request, queryset, RunKind.FULL)

    @admin.action(description="Dry run (store the plan, apply nothing)", permissions=["change"])
    def dry_run(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._start(request, queryset, RunKind.DRY_RUN)

    @admin.action(description="Catch-up (changes since the last sync)", permissions=["change"])
    def catch_up(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._start(request, queryset, RunKind.CATCH_UP)

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet) -> None:
        for provider in queryset:
            ok, text = check_provider_connection(provider)
            if ok:
                self.message_user(request, f"{provider}: connection OK: {text}", messages.SUCCESS)
            else:
                self.message_user(request, f"{provider}: connection failed: {text}", messages.ERROR)
