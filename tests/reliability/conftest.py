"""Helpers that make the database unreachable for this test process only:
the connection is pointed at a port where nothing listens (a real
"connection refused" from psycopg), and restored afterwards. The machine's
Postgres is never touched."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from django.db import connections


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def database_down(alias: str = "default") -> Iterator[None]:
    """Until the block ends, every new connection of ``alias`` is refused."""
    conn = connections[alias]
    conn.close()
    old = conn.settings_dict["PORT"], conn.settings_dict["HOST"]
    conn.settings_dict["HOST"], conn.settings_dict["PORT"] = "127.0.0.1", free_port()
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["PORT"], conn.settings_dict["HOST"] = old
