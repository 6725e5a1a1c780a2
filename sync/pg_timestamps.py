"""Reading ``timestamptz`` values from PostgreSQL at C speed.

Django 5.2 loads every ``timestamptz`` value with a loader written in Python
(``django.db.backends.postgresql.psycopg_any.BaseTzLoader``: psycopg's
pure-Python loader, a regular expression per value, then ``replace(tzinfo=)``),
even when psycopg's C implementation is installed. Inventory, inbox and
history rows carry several timestamps each, so a batch that reads thousands of
rows spent about a tenth of its Python time there.

When the connection's time zone is UTC on both sides (Django's
``connection.timezone``, i.e. ``USE_TZ`` with no per-database ``TIME_ZONE``,
the project's setting; and the session's ``TimeZone``, which Django sets to
match), psycopg's own C loader returns exactly what Django's does: an aware
``datetime`` in ``datetime.timezone.utc``. ``register`` puts that loader on
each new connection (the ``connection_created`` signal, connected in
``sync.apps``); in any other configuration Django's loader stays. Should a
session leave UTC later (``SET TIME ZONE``), its values are converted to UTC
(the same instants).
"""

from __future__ import annotations

import datetime
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

__all__ = ["UtcTimestamptzLoader", "register"]

TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
# psycopg's default text loader for timestamptz: the C one when psycopg's C
# implementation (psycopg[binary] or [c]) is installed.
_DEFAULT = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


class UtcTimestamptzLoader(Loader):
    """psycopg's default loader behind the ``timezone`` attribute Django
    compares on every cursor it creates (so it does not register its own)."""

    format = Format.TEXT
    timezone = datetime.UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        load = _DEFAULT(oid, context).load
        connection = self.connection
        if connection is not None and connection.pgconn.parameter_status(b"TimeZone") != b"UTC":
            # The session left UTC since (SET TIME ZONE): the same instant, in UTC.
            self.load = lambda data: load(data).astimezone(datetime.UTC)  # type: ignore[method-assign]
            return
        # The bound method of the C loader: psycopg calls it directly per value.
        self.load = load  # type: ignore[method-assign]

    def load(self, data: Any) -> datetime.datetime:  # replaced per instance
        raise NotImplementedError


def is_fast() -> bool:
    """Whether psycopg's default timestamptz loader is its C one."""
    return psycopg.pq.__impl__ != "python"


def register(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: use ``UtcTimestamptzLoader`` on this
    connection when both its sides are in UTC (see the module doc)."""
    if connection.vendor != "postgresql" or not is_fast():
        return
    if connection.timezone is not datetime.UTC:
        return
    raw = connection.connection
    if raw.pgconn.parameter_status(b"TimeZone") != b"UTC":
        return
    raw.adapters.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
