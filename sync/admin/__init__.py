"""Admin pages of cloudsync (one module per area, registered on import).

django-celery-beat registers its own admin (schedules stay editable there).
"""

from django.contrib import admin
from django.urls import reverse_lazy

from sync.admin.events import EventAdmin, SyncRunAdmin
from sync.admin.history import HistoryEntryAdmin, PurgeRunAdmin
from sync.admin.inventory import (
    CloudFlavorAdmin,
    CloudHostAdmin,
    CloudImageAdmin,
    CloudPortAdmin,
    CloudProjectAdmin,
)
from sync.admin.provider import CloudProviderAdmin

# "View site" opens the API docs (the root only redirects back to the admin).
admin.site.site_url = reverse_lazy("api-docs")

__all__ = [
    "CloudFlavorAdmin",
    "CloudHostAdmin",
    "CloudImageAdmin",
    "CloudPortAdmin",
    "CloudProjectAdmin",
    "CloudProviderAdmin",
    "EventAdmin",
    "HistoryEntryAdmin",
    "PurgeRunAdmin",
    "SyncRunAdmin",
]
