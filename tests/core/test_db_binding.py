"""Statements' parameters travel apart from their text on Postgres
(``DB_SERVER_SIDE_BINDING``, on by default: project/settings.py)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a psycopg setting"),
]


def test_a_large_parameter_is_not_quoted_into_the_statement():
    document = '{"body": "' + "it's \\\"quoted\\\" " * 20_000 + '"}'
    with connection.cursor() as cursor:
        # then the cursor binds on the server (client-side binding quotes
        # every parameter into the statement's text, and the server lexes it)
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)
        cursor.execute("SELECT length(%s::jsonb ->> 'body'), %s::text", [document, "ok"])
        assert cursor.fetchone() == (len("it's \"quoted\" ") * 20_000, "ok")
