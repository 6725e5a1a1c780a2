"""The one backoff policy: exponential with full jitter, capped. Used for
event retries (sync/ingest.py) and sync-run retries (sync/tasks.py)."""

from __future__ import annotations

import random

from django.conf import settings

__all__ = ["retry_countdown"]


def retry_countdown(retries: int) -> float:
    """Seconds to wait before try number ``retries + 2`` (0: the first retry)."""
    ceiling = min(
        settings.CLOUDSYNC_RETRY_CAP_SECONDS,
        settings.CLOUDSYNC_RETRY_BASE_SECONDS * (2 ** max(retries, 0)),
    )
    return random.uniform(ceiling / 2, ceiling)
