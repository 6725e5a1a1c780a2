"""Helpers to look at, and break, the real broker in tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import redis

from project.celery import app as celery_app


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Publish to another broker URL (e.g. one where nothing listens)."""
    from sync.queueing import reset_broker

    old = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    reset_broker()
    try:
        yield
    finally:
        celery_app.conf.broker_url = old
        reset_broker()


def queued_messages(queue: str = "cloudsync.events") -> list[dict]:
    """The Celery messages waiting in a queue (kombu's Redis list)."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def purge() -> None:
    redis.Redis.from_url(celery_app.conf.broker_url).flushdb()
