"""Telling a database outage from a bad value, and waiting an outage out.

A worker that loses the database must not acknowledge the message it holds
(its content would be neither in the inbox nor in the broker). Errors that
mean "the database is not there" (connection refused or lost, server shutting
down, too many connections) are waited out here, with backoff, while the
message stays unacknowledged; errors that concern one transaction (deadlock,
serialization failure) are retried by the caller; anything else is a value
the database refuses, which fails only its own event.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connections

__all__ = [
    "DatabaseUnavailable",
    "is_transient",
    "is_unavailable",
    "is_vanished_reference",
    "wait_out_outage",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs meaning "no database to talk to": class 08 (connection exception),
# admin/crash shutdown and "cannot connect now" (57P01-57P03), too many
# connections (53300). Others are per statement or transaction: deadlocks and
# serialization failures (40xxx), a statement timeout or cancel (57014), a lock
# timeout (55P03) are transient (retried by id); anything else is a refused value.
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "53300")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for longer than the outage budget."""


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "sqlstate", None) or getattr(exc, "sqlstate", None)


def _is_sqlite(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__module__ == "sqlite3"


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached at all."""
    if isinstance(exc, InterfaceError):  # connection already closed
        return True
    if not isinstance(exc, OperationalError):
        return False
    if _is_sqlite(exc):  # a local file: never "unreachable"; see is_transient
        return False
    state = _sqlstate(exc)
    if state is None:  # client side: refused, reset, timed out, server closed
        return True
    return state.startswith("08") or state in _UNAVAILABLE_STATES


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: an outage, a deadlock, a serialization
    failure, a lock timeout (SQLite "database is locked")."""
    if is_unavailable(exc):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if _is_sqlite(exc):
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    state = _sqlstate(exc) or ""
    return state.startswith("40") or state in ("55P03", "57014")


def is_vanished_reference(exc: BaseException) -> bool:
    """A foreign-key violation (SQLSTATE 23503): a row the transaction
    referenced was deleted by another one before it committed (the retention
    purge removing a tombstone ingest had just resolved). Worth retrying:
    the retry resolves its references again."""
    return isinstance(exc, IntegrityError) and _sqlstate(exc) == "23503"


class _Throttle:
    """At most one log line per interval per process, with a count of the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._suppressed = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < settings.CLOUDSYNC_DB_LOG_SECONDS:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        extra = f" ({suppressed} similar waits not logged)" if suppressed else ""
        log.warning(message + extra, *args)


_warn = _Throttle()


def _close_all() -> None:
    """Drop every connection: the next query opens a fresh one."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except DatabaseError:
            pass


def wait_out_outage(work: Callable[[], T], *, what: str, budget: float | None = None) -> T:
    """Run ``work``; while the database is unavailable, wait with backoff and
    jitter and run it again (``work`` must be idempotent). Gives up with
    DatabaseUnavailable after ``budget`` seconds (CLOUDSYNC_DB_OUTAGE_SECONDS)."""
    budget = settings.CLOUDSYNC_DB_OUTAGE_SECONDS if budget is None else budget
    started = time.monotonic()
    delay = 0.5
    while True:
        try:
            return work()
        except (OperationalError, InterfaceError) as exc:
            if not is_unavailable(exc):
                raise
            _close_all()
            waited = time.monotonic() - started
            if waited >= budget:
                raise DatabaseUnavailable(
                    f"database unavailable for {waited:.0f} s while {what}: {exc}"
                ) from exc
            _warn("database unavailable while %s (%s); waiting, message kept (%.0f s so far)",
                  what, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                  waited)
            time.sleep(min(random.uniform(delay / 2, delay), max(budget - waited, 0.05)))
            delay = min(delay * 2, settings.CLOUDSYNC_DB_WAIT_CAP_SECONDS)
