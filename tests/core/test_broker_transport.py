"""The broker transport survives closing a channel twice after the broker
went away (sync/broker_transport.py), against a real redis-server."""

from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from kombu import Connection

from sync.broker_transport import Transport

# (counts commands server-wide: only meaningful on this test process's own redis-server)
OWN_REDIS = pytest.mark.skipif(
    bool(os.environ.get("CLOUDSYNC_TEST_SHARED_REDIS")) or not shutil.which("redis-server"),
    reason="needs this test process's own redis-server (tests/conftest.py)")


def test_celery_uses_the_repaired_transport():
    from project.celery import app

    with app.connection_for_read() as connection:
        assert isinstance(connection.transport, Transport)


def test_a_channel_closed_again_after_its_transport_was_detached_raises_a_connection_error():
    connection = Connection(settings.CELERY_BROKER_URL, transport=Transport)
    channel = connection.default_channel
    channel.qos._delivered["tag"] = ("message", "exchange", "key")  # an unacknowledged message
    channel.qos._delivered.restored = False
    connection._do_close_transport()  # what the consumer's collect() does on connection loss
    # kombu's channel would raise AttributeError here (no connection error handler catches it)
    with pytest.raises(connection.connection_errors):
        channel.close()
    # and Connection.close(), the consumer's next step, swallows it
    connection.maybe_close_channel(channel)


def test_a_channel_keeps_one_client_per_connection_pool():
    with Connection(settings.CELERY_BROKER_URL, transport=Transport) as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second and first.connection_pool is channel.pool
            assert first.ping()
        given = object()
        with channel.conn_or_acquire(given) as client:  # a caller's own client is used as is
            assert client is given
        channel._after_fork()  # what a forked pool process does: new pools
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool
            assert third.ping()


@OWN_REDIS
def test_many_messages_are_acknowledged_in_one_round_trip():
    import uuid

    import redis

    queue_name = f"test-ack-many-{uuid.uuid4().hex}"
    server = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    with Connection(settings.CELERY_BROKER_URL, transport=Transport) as connection:
        queue = connection.SimpleQueue(queue_name)
        for n in range(7):
            queue.put({"n": n})
        messages = [queue.get(timeout=5) for _ in range(7)]
        channel = queue.channel
        tags = [m.delivery_tag for m in messages]
        assert all(server.hexists("unacked", tag) for tag in tags)
        before = server.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        channel.basic_ack_many(tags[:5])
        after = server.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        assert after - before == 1  # one pipeline for the five
        assert [server.hexists("unacked", tag) for tag in tags] == [False] * 5 + [True] * 2
        assert server.zscore("unacked_index", tags[0]) is None
        channel.qos._flush()
        assert set(channel.qos._delivered) == set(tags[5:])
        channel.basic_ack_many([])  # nothing to do: no round trip
        assert server.info("commandstats").get("cmdstat_exec", {}).get("calls", 0) == after
        for m in messages[5:]:
            m.ack()
        assert not any(server.hexists("unacked", tag) for tag in tags)
        queue.close()
