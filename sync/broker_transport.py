"""Celery's Redis broker transport (kombu's), with one repair and two savings.

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

The savings are in the worker's main process, which takes every message off
the queue and was what limited intake of one-message bodies (profiled: two
thirds of its time in kombu's per-message Redis calls):

* kombu built a new ``redis.Redis`` client (its response-callback table
  included) for every command outside the BRPOP connection, i.e. twice per
  message (recording it unacknowledged, acknowledging it). A channel keeps
  one, on the channel's current connection pool (a new pool after a fork or
  a reconnection gets a new client);
* ``basic_ack_many`` acknowledges a batch of messages in one pipeline (one
  round trip instead of one per message); ``sync.batching`` uses it for a
  batch that committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Channel", "Transport"]


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """The given client, or this channel's client on its current pool
        (kombu created one per call). Commands take a connection from the
        pool each time, as before; only the client object is kept."""
        if client:
            yield client
            return
        pool = self.pool
        kept = self._sync_client
        if kept is None or kept.connection_pool is not pool:
            kept = self._sync_client = self._create_client()
        yield kept

    def _disconnect_pools(self) -> None:
        self._sync_client = None
        super()._disconnect_pools()

    def basic_ack_many(self, delivery_tags: Sequence[str]) -> None:
        """``basic_ack`` of many messages with one Redis round trip: their
        entries leave the unacknowledged index and hash in one pipeline, then
        the channel forgets them (as ``QoS.ack`` does, one by one)."""
        if not delivery_tags:
            return
        qos = self.qos
        with qos.pipe_or_acquire() as pipe:  # (what QoS._remove_from_indices does, for all)
            pipe.zrem(qos.unacked_index_key, *delivery_tags)
            pipe.hdel(qos.unacked_key, *delivery_tags)
            pipe.execute()
        for tag in delivery_tags:
            super(kombu_redis.QoS, qos).ack(tag)  # the virtual QoS: delivered -> dirty


class Transport(kombu_redis.Transport):
    Channel = Channel
