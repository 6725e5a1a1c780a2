#!/usr/bin/env python3
"""``make clean-queue``: drop the Celery messages cloudsync left in Redis.

Queued work outlives ``make run``: events the worker had not ingested yet,
sync runs not started, retries waiting for their countdown (a worker holds
those as "unacknowledged", and Redis hands them out again at the next start).
``make clean`` removes the SQLite database only, so a later ``make run``
would receive tasks for providers, runs and events that no longer exist
(the worker drops them with a log line, but nobody wants the noise).

Only cloudsync's queues are touched (``cloudsync.events`` and
``cloudsync.sync``, their priority lists, their entries in kombu's
unacknowledged set, and the journal of accepted messages), never other keys
of the Redis database. Run it with
``make run`` stopped.
"""

from __future__ import annotations

import json
import os
import sys

import redis

QUEUES = ("cloudsync.events", "cloudsync.sync")
# kombu's Redis transport: a queue with priorities 1-9 keeps them in lists
# named "<queue>\x06\x16<priority>"; unacknowledged messages sit in the hash
# "unacked" (value: [message, exchange, routing key]) indexed by "unacked_index".
PRIORITY_SEP = "\x06\x16"
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
# The journal of accepted messages (sync/queueing.py, sync/journal.py): left
# behind, the sweeper would put the dropped messages back.
JOURNAL = ("cloudsync.journal", "cloudsync.journal.at")


def clean(url: str) -> dict[str, int]:
    """Delete cloudsync's queued and unacknowledged messages at ``url``;
    returns how many were dropped per queue."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    dropped = dict.fromkeys(QUEUES, 0)
    for queue in QUEUES:
        for name in [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))]:
            dropped[queue] += client.llen(name)
            client.delete(name)
    for tag, raw in client.hscan_iter(UNACKED):
        try:
            _message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key in dropped:
            dropped[routing_key] += client.hdel(UNACKED, tag)
            client.zrem(UNACKED_INDEX, tag)
    client.delete(*JOURNAL)
    return dropped


def main() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        dropped = clean(url)
    except redis.RedisError as exc:
        print(f"cloudsync: Redis does not answer at {url} ({exc})", file=sys.stderr)
        return 1
    detail = ", ".join(f"{queue} {count}" for queue, count in dropped.items())
    print(f"cloudsync: dropped {sum(dropped.values())} queued messages at {url} ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
