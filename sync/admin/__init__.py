"""Admin pages of cloudsync (one module per area, registered on import).

django-celery-beat registers its own admin (schedules stay editable there).
"""

from sync.admin.events import EventAdmin, SyncRunAdmin
from sync.admin.inventory import (
    CloudFlavorAdmin,
    CloudHostAdmin,
    CloudImageAdmin,
    CloudPortAdmin,
    CloudProjectAdmin,
)
from sync.admin.provider import CloudProviderAdmin

__all__ = [
    "CloudFlavorAdmin",
    "CloudHostAdmin",
    "CloudImageAdmin",
    "CloudPortAdmin",
    "CloudProjectAdmin",
    "CloudProviderAdmin",
    "EventAdmin",
    "SyncRunAdmin",
]
