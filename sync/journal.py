"""The journal of accepted webhook messages, in Redis beside the queue.

The endpoint writes each message to its queue and to the journal in one
atomic script (``sync.queueing``). kombu's Redis transport takes a message
with BRPOP and only then records it as unacknowledged: a worker, or Redis,
killed between the two would lose the message with no trace. The journal
keeps every accepted message until the worker that recorded it in the inbox
forgets it, so the sweeper can put back one that is in neither the queue nor
kombu's unacknowledged set. A message put back twice is harmless: the inbox
deduplicates it.

Cost: a queued body is held twice in Redis until it is processed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

import redis
from django.conf import settings

from sync.queueing import INGEST_QUEUE, JOURNAL_MESSAGES, JOURNAL_TIMES, broker_url

__all__ = ["forget", "pending", "recover"]

log = logging.getLogger(__name__)

UNACKED = "unacked"  # kombu's hash of unacknowledged messages, by delivery tag


def _client() -> redis.Redis:
    return redis.Redis.from_url(broker_url(), socket_connect_timeout=2, socket_timeout=10)


def forget(task_ids: Iterable[str | None]) -> None:
    """The inbox has these messages: drop them from the journal (best effort:
    an entry left behind is at worst put back once, and deduplicated)."""
    ids = [i for i in task_ids if i]
    if not ids:
        return
    try:
        client = _client()
        with client.pipeline(transaction=False) as pipe:
            pipe.hdel(JOURNAL_MESSAGES, *ids).zrem(JOURNAL_TIMES, *ids)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("journal: %d entries not forgotten (%s); they may be replayed once",
                    len(ids), exc)


def pending() -> int:
    """How many accepted messages the journal still holds."""
    return int(_client().zcard(JOURNAL_TIMES))


def recover(limit: int = 100) -> int:
    """Put back messages older than CLOUDSYNC_JOURNAL_RECOVER_SECONDS that
    are in neither the queue nor kombu's unacknowledged set (lost between
    BRPOP and its bookkeeping). Returns how many were put back."""
    client = _client()
    cutoff = time.time() - settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS
    old = client.zrangebyscore(JOURNAL_TIMES, 0, cutoff, start=0, num=limit)
    restored = 0
    for task_id in old:
        message = client.hget(JOURNAL_MESSAGES, task_id)
        if message is None:  # forgotten meanwhile
            client.zrem(JOURNAL_TIMES, task_id)
            continue
        try:
            tag = json.loads(message)["properties"]["delivery_tag"]
        except (ValueError, KeyError, TypeError):
            tag = None
        # Searched from the oldest end, where an old message still queued sits.
        if (tag and client.hexists(UNACKED, tag)) or client.lpos(
            INGEST_QUEUE, message, rank=-1
        ) is not None:
            continue
        with client.pipeline() as pipe:  # MULTI: put back and re-date together
            pipe.lpush(INGEST_QUEUE, message).zadd(JOURNAL_TIMES, {task_id: time.time()})
            pipe.execute()
        restored += 1
    if restored:
        log.warning("journal: %d accepted messages were lost by the broker and put back",
                    restored)
    return restored
