"""The real RabbitMQ for relay tests: unique names per test, cleaned up after.

Every test gets its own exchanges (``nova_<tag>``, ...), topics
(``notifications_<tag>``, ``versioned_notifications_<tag>``) and pools, so
concurrent runs on the machine (and a real OpenStack's ``nova`` exchange)
never see each other's messages. Everything declared under those names, the
Notifier's default queues included, is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import kombu
import pytest

RABBIT_URL = os.environ.get("CLOUDSYNC_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
AMQP_URL = "amqp://" + RABBIT_URL.split("://", 1)[1]
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
SERVICES = ("nova", "glance", "neutron", "keystone")


def rabbit_answers() -> bool:
    host = AMQP_URL.split("@", 1)[-1].split("/", 1)[0]
    name, _, port = host.partition(":")
    try:
        with socket.create_connection((name, int(port or 5672)), timeout=1):
            return True
    except OSError:
        return False


def require_rabbit() -> None:
    if not rabbit_answers():
        pytest.fail(f"RabbitMQ does not answer at {AMQP_URL} (.ci/run starts it if installed)")


def _conf() -> Any:
    from oslo_config import cfg
    from oslo_messaging import opts

    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(options, group=None if group in (None, "DEFAULT") else group)
    conf(args=[], default_config_files=[], default_config_dirs=[], use_env=False)
    return conf


@dataclass
class Bus:
    """One test's names on the shared broker."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    transports: list[Any] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)

    def exchange(self, service: str) -> str:
        return f"{service}_{self.tag}"

    @property
    def exchanges(self) -> list[str]:
        return [self.exchange(s) for s in SERVICES]

    def topic(self, name: str) -> str:
        return f"{name}_{self.tag}"

    @property
    def topics(self) -> list[str]:
        return [self.topic("notifications"), self.topic("versioned_notifications")]

    def pool(self, name: str) -> str:
        pool = f"{name}_{self.tag}"
        self.pools.append(pool)
        return pool

    def notifier(self, service: str, publisher_id: str, topic: str) -> Any:
        """A real oslo.messaging Notifier (``messagingv2``), publishing as
        ``service`` does: to its control exchange, on ``topic``."""
        import oslo_messaging

        conf = _conf()
        conf.set_override("control_exchange", self.exchange(service))
        transport = oslo_messaging.get_notification_transport(conf, url=RABBIT_URL)
        self.transports.append(transport)
        return oslo_messaging.Notifier(
            transport, publisher_id=publisher_id, driver="messagingv2", topics=[self.topic(topic)]
        )

    def listener(self, endpoints: list[Any], pool: str) -> Any:
        """An independent oslo.messaging listener on every test topic/exchange."""
        import oslo_messaging

        transport = oslo_messaging.get_notification_transport(_conf(), url=RABBIT_URL)
        self.transports.append(transport)
        targets = [
            oslo_messaging.Target(topic=t, exchange=e) for e in self.exchanges for t in self.topics
        ]
        return oslo_messaging.get_notification_listener(
            transport, targets, endpoints, executor="threading", pool=pool
        )

    def publish_raw(
        self,
        service: str,
        topic: str,
        body: bytes | str,
        priority: str = "info",
        content_type: str = "application/json",
    ) -> None:
        """Bytes straight onto the exchange with a notification routing key
        (what a broken or foreign publisher could send)."""
        with kombu.Connection(AMQP_URL) as conn:
            exchange = kombu.Exchange(self.exchange(service), type="topic", durable=False)
            producer = conn.Producer()
            producer.publish(
                body,
                exchange=exchange,
                routing_key=f"{self.topic(topic)}.{priority}",
                content_type=content_type,
                content_encoding="utf-8",
                declare=[exchange],
            )

    def queue_depth(self, queue: str) -> tuple[int, int] | None:
        """(ready messages, consumers) of a queue, None if it does not exist."""
        with kombu.Connection(AMQP_URL) as conn:
            try:
                _, ready, consumers = conn.channel().queue_declare(queue=queue, passive=True)
            except Exception:  # NotFound
                return None
            return ready, consumers

    def cleanup(self) -> None:
        for transport in self.transports:
            transport.cleanup()
        queues = [*self.pools]
        queues += [f"{t}.{p}" for t in self.topics for p in PRIORITIES]
        with kombu.Connection(AMQP_URL) as conn:
            for name in queues:
                try:
                    conn.channel().queue_delete(queue=name)
                except Exception:  # noqa: S110 - not declared by this test
                    pass
            for name in self.exchanges:
                try:
                    conn.channel().exchange_delete(exchange=name)
                except Exception:  # noqa: S110
                    pass


def oslo_envelope(message: dict[str, Any]) -> bytes:
    """A ``messagingv2`` wire body around a message (as the Notifier writes it)."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()
