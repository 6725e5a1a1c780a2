"""A trivial Celery task: the per-task ceiling ``bench/e2e.py`` measures ingest against.

Loaded into the benchmark's worker with ``--include bench.noop_tasks``; never
part of the service. The task does nothing but count itself (one Redis INCR)
so the benchmark sees when the queue is drained. It is declared like the
project's event tasks are run (``acks_late``, no result), so the drain pays
the same per-message broker costs: fetch, reserve, run in the pool, ack.
"""

from __future__ import annotations

import os

import redis

from project.celery import app

__all__ = ["DONE_KEY", "noop", "redis_client"]

DONE_KEY = "bench:noop:done"
_client: list[tuple[int, redis.Redis]] = []


def redis_client() -> redis.Redis:
    """One client per process (pool processes are forked after import)."""
    pid = os.getpid()
    if not _client or _client[0][0] != pid:
        _client[:] = [(pid, redis.Redis.from_url(app.conf.broker_url))]
    return _client[0][1]


@app.task(name="bench.noop", acks_late=True, ignore_result=True)
def noop() -> None:
    """Count one finished task."""
    redis_client().incr(DONE_KEY)
