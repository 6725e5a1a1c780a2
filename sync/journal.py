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


def recover(limit: int = 100, scan: int = 2_000, page: int = 200) -> int:
    """Put back messages older than CLOUDSYNC_JOURNAL_RECOVER_SECONDS that
    are in neither the queue nor kombu's unacknowledged set, oldest first,
    at most ``limit`` per call. Returns how many were put back.

    Such an entry is a message lost between BRPOP and kombu's bookkeeping;
    or one the inbox has but whose entry a worker could not forget (Redis
    was away when its batch committed); or one kombu put back on the queue
    itself (a redelivery), re-serialized, so the queue's copy is not found.
    Put back, the inbox deduplicates the last two.

    Entries held unacknowledged are looked past (up to ``scan`` entries,
    ``page`` at a time, three pipelined round trips a page): after a Redis
    restart a few hundred messages are held until their redelivery, and when
    only the oldest ``limit`` entries were looked at, a lost message behind
    them waited for it (seen: 96 s instead of ~45 s). Queued ones are not:
    a lost message was taken off the queue before every message still on
    it, so the search stops at the page where ``limit`` queued entries were
    found (each costs an LPOS scan of the queue from its oldest end). An
    entry a concurrent ``forget`` shifts past is found by the next sweep."""
    client = _client()
    cutoff = time.time() - settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS
    restored = start = looked = queued = 0
    while restored < limit and looked < scan and queued < limit:
        old = client.zrangebyscore(JOURNAL_TIMES, 0, cutoff, start=start, num=page)
        if not old:
            break
        looked += len(old)
        gone, lost, found = _lost(client, old)
        queued += found
        put_back = lost[: limit - restored]
        for task_id, message in put_back:
            with client.pipeline() as pipe:  # MULTI: put back and re-date together
                pipe.lpush(INGEST_QUEUE, message).zadd(JOURNAL_TIMES, {task_id: time.time()})
                pipe.execute()
        restored += len(put_back)
        if gone:
            client.zrem(JOURNAL_TIMES, *gone)
        # (entries re-dated or dropped left the range: the next page starts earlier)
        start += len(old) - len(gone) - len(put_back)
    if restored:
        log.warning("journal: %d accepted messages were in neither the queue nor the "
                    "unacknowledged set and were put back (lost between BRPOP and kombu's "
                    "bookkeeping; or recorded while their entry could not be forgotten, or "
                    "redelivered by kombu: the inbox deduplicates those)", restored)
    return restored


def _lost(client: redis.Redis, task_ids: list[bytes]) -> tuple[list[bytes], list[tuple], int]:
    """Of these journal entries: those forgotten meanwhile (no message),
    (task id, message) of those in neither the queue nor kombu's unacked
    set, and how many were found queued. Three pipelined round trips."""
    with client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hget(JOURNAL_MESSAGES, task_id)
        messages = pipe.execute()
    gone = [t for t, m in zip(task_ids, messages, strict=True) if m is None]
    held = [(t, m, _tag(m)) for t, m in zip(task_ids, messages, strict=True) if m is not None]
    with client.pipeline(transaction=False) as pipe:
        for _, _, tag in held:
            pipe.hexists(UNACKED, tag or "")
        unacked = pipe.execute()
    free = [(t, m) for (t, m, _), u in zip(held, unacked, strict=True) if not u]
    if not free:
        return gone, [], 0
    with client.pipeline(transaction=False) as pipe:
        for _, message in free:  # searched from the oldest end, where an old message sits
            pipe.lpos(INGEST_QUEUE, message, rank=-1)
        at = pipe.execute()
    lost = [item for item, position in zip(free, at, strict=True) if position is None]
    return gone, lost, len(free) - len(lost)


def _tag(message: bytes) -> str | None:
    try:
        return json.loads(message)["properties"]["delivery_tag"]
    except (ValueError, KeyError, TypeError):
        return None
