"""The broker transport survives closing a channel twice after the broker
went away (sync/broker_transport.py), against a real redis-server."""

from __future__ import annotations

import pytest
from django.conf import settings
from kombu import Connection

from sync.broker_transport import Transport


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
