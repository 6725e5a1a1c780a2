"""Read-only inventory pages: rows are written by sync, never by hand.

Tombstoned rows stay reachable: the querysets use ``all_objects`` and the
"deleted" filter shows live rows unless asked otherwise.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sync.admin.common import DeletedListFilter, ReadOnlyAdminMixin, pretty_json
from sync.admin.history import object_history
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    SyncedModel,
)

__all__ = [
    "CloudFlavorAdmin",
    "CloudHostAdmin",
    "CloudImageAdmin",
    "CloudPortAdmin",
    "CloudProjectAdmin",
    "InventoryAdmin",
    "inventory_columns",
    "inventory_fieldsets",
]


def inventory_columns(model: type[SyncedModel], *, leave_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``list_display``: the row's name, external id and provider, then its
    other synced fields (but ``leave_out``), then whether it is live."""
    name, *rest = model.synced_fields
    shown = (f for f in rest if f not in leave_out)
    return (name, model.external_id_field, "cloudprovider", *shown, "is_live")


def inventory_fieldsets(
    model: type[SyncedModel],
    *,
    leave_out: tuple[str, ...] = (),
    more: tuple[str, ...] = (),
    extra: tuple = (),
) -> tuple:
    """The provider, the external id and the synced fields (but ``leave_out``;
    ``more`` after them), the ``extra`` fieldsets, then the bookkeeping."""
    shown = (f for f in model.synced_fields if f not in leave_out)
    return (
        (None, {"fields": ("cloudprovider", model.external_id_field, *shown, *more)}),
        *extra,
        ("Sync bookkeeping", {"fields": model.bookkeeping_fields}),
    )


class InventoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Base of the synced-model admins (view only, tombstones included)."""

    list_filter: tuple = ("cloudprovider", DeletedListFilter)
    list_select_related: tuple = ("cloudprovider",)
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over the whole table
    history_kind = ""  # sync.changes.Kind value: the object page's History section

    def get_fieldsets(self, request: HttpRequest, obj: SyncedModel | None = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and self.history_kind:
            fieldsets.append(("History (newest first)", {"fields": ("history",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: SyncedModel | None = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "history")

    @admin.display(description="changes")
    def history(self, obj: SyncedModel) -> str:
        return object_history(self.history_kind, obj.pk)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = self.model.all_objects.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        return qs

    @admin.display(boolean=True, description="live", ordering="deleted_at")
    def is_live(self, obj: CloudHost) -> bool:
        return obj.deleted_at is None


class CloudHostIPInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CloudHostIP
    fk_name = "host"
    fields = (*CloudHostIP.address_fields, "port")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name = "IP address"
    verbose_name_plural = "IP addresses"


class PortIPInline(CloudHostIPInline):
    fk_name = "port"
    fields = (*CloudHostIP.address_fields, "host")
    readonly_fields = fields


@admin.register(CloudHost)
class CloudHostAdmin(InventoryAdmin):
    history_kind = "host"
    list_display = (
        "hostname",
        "host_id",
        "status",
        "cloudprovider",
        "project",
        "cloudflavor",
        "image",
        "hypervisor",
        "last_seen_at",
        "is_live",
    )
    list_display_links = ("hostname", "host_id")
    list_filter = ("cloudprovider", "status", "hypervisor", DeletedListFilter)
    list_select_related = ("cloudprovider", "cloudflavor", "image", "project")
    search_fields = ("host_id", "hostname", "ips__address")
    inlines = (CloudHostIPInline,)
    fieldsets = inventory_fieldsets(
        CloudHost,
        leave_out=("ips", "tags", "metadata"),  # the inline and the pretty fieldset show them
        extra=(("Tags and metadata", {"fields": ("tags_pretty", "metadata_pretty")}),),
    )
    readonly_fields = ("tags_pretty", "metadata_pretty")

    @admin.display(description="tags")
    def tags_pretty(self, obj: CloudHost) -> str:
        return pretty_json(obj.tags)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj: CloudHost) -> str:
        return pretty_json(obj.metadata)


@admin.register(CloudFlavor)
class CloudFlavorAdmin(InventoryAdmin):
    history_kind = "flavor"
    list_display = inventory_columns(CloudFlavor, leave_out=("extra_specs",))
    list_display_links = ("name", "flavor_id")
    list_filter = ("cloudprovider", "is_public", DeletedListFilter)
    search_fields = ("flavor_id", "name")
    fieldsets = inventory_fieldsets(CloudFlavor, leave_out=("extra_specs",), more=("extra_specs_pretty",))
    readonly_fields = ("extra_specs_pretty",)

    @admin.display(description="extra specs")
    def extra_specs_pretty(self, obj: CloudFlavor) -> str:
        return pretty_json(obj.extra_specs)


@admin.register(CloudImage)
class CloudImageAdmin(InventoryAdmin):
    history_kind = "image"
    list_display = inventory_columns(CloudImage, leave_out=("min_disk", "min_ram"))
    list_display_links = ("name", "image_id")
    list_filter = ("cloudprovider", "status", "os_distro", "visibility", DeletedListFilter)
    search_fields = ("image_id", "name", "os_distro")
    fieldsets = inventory_fieldsets(CloudImage)


@admin.register(CloudProject)
class CloudProjectAdmin(InventoryAdmin):
    history_kind = "project"
    list_display = inventory_columns(CloudProject)
    list_display_links = ("name", "project_id")
    list_filter = ("cloudprovider", "enabled", DeletedListFilter)
    search_fields = ("project_id", "name", "domain")
    fieldsets = inventory_fieldsets(CloudProject)


@admin.register(CloudPort)
class CloudPortAdmin(InventoryAdmin):
    history_kind = "host_ip"
    list_display = ("port_id", "cloudprovider", *CloudPort.synced_fields, "is_live")
    list_select_related = ("cloudprovider", "host")
    search_fields = ("port_id", "parent_port_id", "host__host_id", "ips__address")
    inlines = (PortIPInline,)
    fieldsets = inventory_fieldsets(CloudPort)
