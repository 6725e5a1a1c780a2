"""Celery's Redis broker transport (kombu's), with one repair.

When the broker connection drops, Celery 5.7's consumer first ``collect()``s
the connection — which closes its channel and then detaches the transport
from the connection (``transport.client = None``) — and then ``close()``s
it, closing the same channel again if the first close failed part-way (it
talks to the Redis that just went away). That second close restores the
unacknowledged messages through a new Redis client built from
``transport.client``, which is None by then: an ``AttributeError`` that no
connection-error handler catches, so the worker stops with "Unrecoverable
error" (seen in the redis-sigkill fault scenario; still so in kombu's and
Celery's main branches on 2026-11-28).

Here a channel whose transport was detached raises the transport's own
connection error instead, which every caller on those paths handles: the
consumer reconnects, and the unacknowledged messages stay in Redis' unacked
set until the visibility timeout restores them (``CLOUDSYNC_REDELIVERY_SECONDS``),
as for a worker that died. Selected by ``CELERY_BROKER_TRANSPORT``.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Channel", "Transport"]


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
