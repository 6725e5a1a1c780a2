from sync.models import lookups  # noqa: F401 (registers field__any)
from sync.models.events import Event, SyncRun
from sync.models.history import HistoryEntry, PurgeRun
from sync.models.inventory import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    SyncedModel,
)
from sync.models.provider import CloudProvider
from sync.models.rollups import EventRollup
from sync.models.staging import ListedId, ListingDigest

__all__ = [
    "CloudFlavor",
    "CloudHost",
    "CloudHostIP",
    "CloudImage",
    "CloudPort",
    "CloudProject",
    "CloudProvider",
    "Event",
    "EventRollup",
    "HistoryEntry",
    "ListedId",
    "ListingDigest",
    "PurgeRun",
    "SyncRun",
    "SyncedModel",
]
