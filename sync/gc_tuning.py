"""The garbage collector in worker processes: fewer, cheaper collections.

A full-sync chunk or an event batch builds hundreds of thousands of small
objects (Changes, model rows, history entries, JSON documents) that all live
until the chunk is written. CPython's default thresholds (700, 10, 10) run a
young collection every 700 allocations and, every 100 of those, a scan of
everything alive, again and again over objects that are not garbage: with
history on, a 10k-server full sync from empty spent about a fifth of its time
there (``bench/fullsync.py``). Workers therefore start with a larger first
threshold (``CLOUDSYNC_GC_THRESHOLDS``, default 10000,10,10) and freeze what
exists at start (Django, drivers, the app: never garbage) out of every scan.
Memory is bounded as before: cycles are still collected, just in larger
steps; reference counting frees everything else at once.

Called by the Celery worker at start (``project.celery``), before prefork
pool children are forked (they inherit it) and again in each child. The
setting is parsed when the settings load (``parse_thresholds``): a bad value
stops the process at start, with the reason (a Celery signal handler's
exception would only be logged).
"""

from __future__ import annotations

import gc

from django.conf import settings

__all__ = ["parse_thresholds", "tune"]


def parse_thresholds(text: str) -> tuple[int, ...] | None:
    """``"10000,10,10"`` -> (10000, 10, 10); empty -> None (CPython's own)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or any(v < 1 for v in values):
        raise ValueError(
            f"CLOUDSYNC_GC_THRESHOLDS must be one to three positive integers "
            f"separated by commas (e.g. 10000,10,10), not {text!r}"
        )
    return values


def tune() -> tuple[int, ...] | None:
    """Apply ``CLOUDSYNC_GC_THRESHOLDS`` (parsed by the settings) to this
    process; returns them (None: left as CPython's)."""
    thresholds = settings.CLOUDSYNC_GC_THRESHOLDS
    if thresholds is None:
        return None
    gc.freeze()  # (what is alive now stays: out of every later scan)
    gc.set_threshold(*thresholds)
    return thresholds
