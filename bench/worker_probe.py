"""Counts SQL statements and batches inside the benchmark's worker (``bench/e2e.py``).

Loaded into the worker with ``--include bench.worker_probe``; never part of
the service, and inert in any process that only imports it: it starts in
each pool process (``worker_process_init``).

* **SQL statements.** ``pg_stat_statements`` is not loaded on the shared
  Postgres, and ``pg_stat_database`` counts transactions and rows, not
  statements. So each pool process counts the statements that go through
  Django's cursor wrappers: every ORM query and every ``connection.cursor()``
  statement; a bulk statement or an ``executemany`` is one.
* **Batches.** ``sync.batching`` sends ``task_prerun`` for every message of a
  batch, then runs the batch, then sends ``task_postrun`` for each: a batch
  is a run of consecutive ``task_prerun`` signals in a pool process.

The counts are added to Redis keys after each task (``task_postrun``) and
when a pool process exits. The cost: one Python call per statement and per
message, and one Redis round trip per batch.
"""

from __future__ import annotations

from typing import Any

from celery import signals
from django.db import connections
from django.db.backends.signals import connection_created

from bench.noop_tasks import redis_client as _redis

__all__ = ["BATCHES_KEY", "STATEMENTS_KEY"]

STATEMENTS_KEY = "bench:probe:statements"
BATCHES_KEY = "bench:probe:batches"
_pending = {"statements": 0, "batches": 0}
_in_batch = [False]


def _count(execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
    _pending["statements"] += 1
    return execute(sql, params, many, context)


def _install(connection: Any) -> None:
    # First in the list: ``connection.execute_wrapper()`` contexts pop the
    # last wrapper when they end, which must stay theirs.
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _count)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    _install(connection)


def _on_prerun(**kwargs: Any) -> None:
    if not _in_batch[0]:
        _in_batch[0] = True
        _pending["batches"] += 1


def _flush(**kwargs: Any) -> None:
    _in_batch[0] = False
    if _pending["statements"] or _pending["batches"]:
        statements, batches = _pending["statements"], _pending["batches"]
        _pending["statements"] = _pending["batches"] = 0
        pipe = _redis().pipeline(transaction=False)
        pipe.incrby(STATEMENTS_KEY, statements)
        pipe.incrby(BATCHES_KEY, batches)
        pipe.execute()


def _start(**kwargs: Any) -> None:
    """In each pool process (after the fork): count from now on."""
    for conn in connections.all():
        _install(conn)
    connection_created.connect(_on_connection, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_flush, weak=False)
    signals.worker_process_shutdown.connect(_flush, weak=False)


signals.worker_process_init.connect(_start, weak=False)
