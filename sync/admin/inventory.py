"""Read-only inventory pages: rows are written by sync, never by hand.

Tombstoned rows stay reachable: the querysets use ``all_objects`` and the
"deleted" filter shows live rows unless asked otherwise.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sync.admin.common import DeletedListFilter, ReadOnlyAdminMixin, pretty_json
from sync.models import CloudFlavor, CloudHost, CloudHostIP, CloudImage, CloudPort, CloudProject

__all__ = [
    "CloudFlavorAdmin",
    "CloudHostAdmin",
    "CloudImageAdmin",
    "CloudPortAdmin",
    "CloudProjectAdmin",
    "InventoryAdmin",
]

BOOKKEEPING = (
    "source_version",
    "last_seen_at",
    "last_event_at",
    "last_synced_by",
    "deleted_at",
    "created_at",
    "modified_at",
)


class InventoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Base of the synced-model admins (view only, tombstones included)."""

    list_filter: tuple = ("cloudprovider", DeletedListFilter)
    list_select_related: tuple = ("cloudprovider",)
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over the whole table

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
    fields = ("address", "version", "kind", "mac", "port")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name = "IP address"
    verbose_name_plural = "IP addresses"


class PortIPInline(CloudHostIPInline):
    fk_name = "port"
    fields = ("address", "version", "kind", "mac", "host")
    readonly_fields = fields


@admin.register(CloudHost)
class CloudHostAdmin(InventoryAdmin):
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
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "cloudprovider",
                    "host_id",
                    "hostname",
                    "status",
                    "project",
                    "cloudflavor",
                    "image",
                    "image_ref",
                    "hypervisor",
                    "launched_at",
                )
            },
        ),
        ("Tags and metadata", {"fields": ("tags_pretty", "metadata_pretty")}),
        ("Sync bookkeeping", {"fields": BOOKKEEPING}),
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
    list_display = (
        "name",
        "flavor_id",
        "cloudprovider",
        "cores",
        "memory",
        "disk",
        "is_public",
        "is_live",
    )
    list_display_links = ("name", "flavor_id")
    list_filter = ("cloudprovider", "is_public", DeletedListFilter)
    search_fields = ("flavor_id", "name")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "cloudprovider",
                    "flavor_id",
                    "name",
                    "cores",
                    "memory",
                    "disk",
                    "is_public",
                    "extra_specs_pretty",
                )
            },
        ),
        ("Sync bookkeeping", {"fields": BOOKKEEPING}),
    )
    readonly_fields = ("extra_specs_pretty",)

    @admin.display(description="extra specs")
    def extra_specs_pretty(self, obj: CloudFlavor) -> str:
        return pretty_json(obj.extra_specs)


@admin.register(CloudImage)
class CloudImageAdmin(InventoryAdmin):
    list_display = (
        "name",
        "image_id",
        "cloudprovider",
        "status",
        "os_distro",
        "os_version",
        "architecture",
        "visibility",
        "is_live",
    )
    list_display_links = ("name", "image_id")
    list_filter = ("cloudprovider", "status", "os_distro", "visibility", DeletedListFilter)
    search_fields = ("image_id", "name", "os_distro")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "cloudprovider",
                    "image_id",
                    "name",
                    "status",
                    "os_distro",
                    "os_version",
                    "architecture",
                    "min_disk",
                    "min_ram",
                    "visibility",
                )
            },
        ),
        ("Sync bookkeeping", {"fields": BOOKKEEPING}),
    )


@admin.register(CloudProject)
class CloudProjectAdmin(InventoryAdmin):
    list_display = ("name", "project_id", "cloudprovider", "domain", "enabled", "is_live")
    list_display_links = ("name", "project_id")
    list_filter = ("cloudprovider", "enabled", DeletedListFilter)
    search_fields = ("project_id", "name", "domain")
    fieldsets = (
        (None, {"fields": ("cloudprovider", "project_id", "name", "domain", "enabled")}),
        ("Sync bookkeeping", {"fields": BOOKKEEPING}),
    )


@admin.register(CloudPort)
class CloudPortAdmin(InventoryAdmin):
    list_display = ("port_id", "cloudprovider", "host", "parent_port_id", "is_live")
    list_select_related = ("cloudprovider", "host")
    search_fields = ("port_id", "parent_port_id", "host__host_id", "ips__address")
    inlines = (PortIPInline,)
    fieldsets = (
        (None, {"fields": ("cloudprovider", "port_id", "host", "parent_port_id")}),
        ("Sync bookkeeping", {"fields": BOOKKEEPING}),
    )
