"""A real Postgres trigger for a test: how a test makes the database refuse
a write or drop the connection mid-transaction, without mocking it."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection, models


def install(name: str, model: type[models.Model], events: str, body: str) -> Callable[[], None]:
    """``BEFORE <events>`` row trigger ``name`` on ``model``'s table running
    the PL/pgSQL ``body`` (then the row is written); returns its removal
    (idempotent; it opens a fresh connection first, in case the trigger
    ended the last one)."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body} RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER {name} BEFORE {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )

    def remove() -> None:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")

    return remove
