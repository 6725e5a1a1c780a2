"""The bus side: an oslo.messaging batch notification listener in the relay's
own pool, handing each batch to ``Relay.handle``.

``Relay.handle`` gets the raw incoming messages and returns those to requeue;
oslo.messaging's ``BatchNotificationServer`` then acknowledges every other
message of the batch and requeues these (``allow_requeue=True``). So a message
leaves the bus only after cloudsync answered 202 for it, refused it for good,
or it was found malformed (both logged). Messages the driver itself cannot
decode (not JSON, a broken ``oslo.message``) are rejected by oslo.messaging's
rabbit driver before they reach us; the relay counts them as dropped too.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import oslo_messaging
from oslo_messaging import dispatcher as oslo_dispatcher
from oslo_messaging.notify import listener as oslo_listener

from cloudsync_relay.config import Settings
from cloudsync_relay.delivery import Delivery
from cloudsync_relay.health import Counters
from cloudsync_relay.notification import Malformed, encode, to_body

__all__ = ["Relay", "build_listener", "count_driver_drops"]

log = logging.getLogger("cloudsync_relay")


class Backoff:
    """Delay before requeueing, shared by all batches: grows with each
    consecutive failure (exponential, with jitter, capped), reset by a 202."""

    def __init__(self, base: float, cap: float, stopping: threading.Event) -> None:
        self.base, self.cap = base, cap
        self._stopping = stopping
        self._failures = 0
        self._lock = threading.Lock()

    def failed(self) -> float:
        with self._lock:
            self._failures += 1
            n = self._failures
        delay = min(self.cap, self.base * 2 ** min(n - 1, 30))
        return delay / 2 + random.uniform(0, delay / 2)

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class Relay:
    def __init__(
        self, settings: Settings, delivery: Delivery | None = None, counters: Counters | None = None
    ) -> None:
        self.settings = settings
        self.delivery = delivery or Delivery(
            settings.url, settings.secret, timeout=settings.timeout,
            verify=settings.verify, max_body_bytes=settings.max_body_bytes,
        )  # fmt: skip
        self.counters = counters or Counters()
        self.stopping = threading.Event()
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, self.stopping)

    def handle(self, incoming: Sequence[Any]) -> set[Any]:
        """Relay a batch of incoming messages; return those to requeue."""
        items: list[tuple[Any, bytes]] = []
        dropped = 0
        for message in incoming:
            try:
                items.append((message, encode(to_body(message.ctxt, message.message))))
            except Malformed as exc:
                dropped += 1
                log.warning(
                    "dropped a malformed message from the bus: %s (%s)",
                    exc,
                    _describe(message.message),
                )
        if self.stopping.is_set():
            self.counters.add(dropped=dropped, requeued=len(items))
            return {m for m, _ in items}
        outcome = self.delivery.send(items)
        for message, reason in outcome.dropped:
            log.error(
                "dropped %s: the endpoint refused it for good, %s",
                _describe(message.message),
                reason,
            )
        requeue = set(outcome.retry)
        if outcome.delivered:
            self.backoff.succeeded()
        if requeue:
            delay = self.backoff.failed()
            log.warning(
                "%d notification(s) requeued in %.1f s: %s",
                len(requeue),
                delay,
                outcome.retry_reason,
            )
            self.backoff.wait(delay)
        self.counters.add(
            relayed=len(outcome.delivered),
            dropped=dropped + len(outcome.dropped),
            requeued=len(requeue),
            posts=outcome.posts,
        )
        return requeue


def _describe(message: Any) -> str:
    if not isinstance(message, dict):
        return f"a {type(message).__name__}"
    event_type = message.get("event_type")
    message_id = message.get("message_id")
    publisher = message.get("publisher_id")
    return f"event_type={event_type!r} message_id={message_id!r} publisher_id={publisher!r}"


class _Dispatcher(oslo_dispatcher.DispatcherBase):
    """Hands whole batches to the relay (no per-priority endpoint methods:
    one malformed message must not fail its neighbours)."""

    def __init__(self, relay: Relay, priorities: Iterable[str]) -> None:
        self.relay = relay
        self._priorities = list(priorities)

    @property
    def supported_priorities(self) -> list[str]:
        return self._priorities

    def dispatch(self, incoming: Sequence[Any]) -> set[Any]:
        return self.relay.handle(incoming)


class _DriverDrops(logging.Handler):
    """Counts messages oslo.messaging's rabbit driver rejects as undecodable
    ("Failed to process message ... skipping it.") as dropped."""

    def __init__(self, counters: Counters) -> None:
        super().__init__(level=logging.ERROR)
        self.counters = counters

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Failed to process message"):
            self.counters.add(dropped=1)
            reason = record.exc_info[1] if record.exc_info else "undecodable"
            log.warning("dropped an undecodable message from the bus: %s", reason)


def count_driver_drops(counters: Counters) -> logging.Handler:
    handler = _DriverDrops(counters)
    # oslo.messaging logs through oslo.log's "oslo.messaging" names, or the
    # module's own name when oslo.log is not set up
    for name in ("oslo.messaging._drivers.impl_rabbit", "oslo_messaging._drivers.impl_rabbit"):
        logging.getLogger(name).addHandler(handler)
    return handler


def build_listener(settings: Settings, relay: Relay) -> tuple[Any, Any]:
    """(transport, server) for the relay's targets in its own pool."""
    conf = settings.conf
    if conf is not None and "oslo_messaging_rabbit" in conf:
        # Bounded prefetch (unless the file sets one): a few batches per POST
        # slot held unacknowledged, not the whole backlog. Read by the driver
        # when the transport is made.
        if not conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count:
            prefetch = settings.batch_size * (settings.concurrency + 1)
            conf.set_override("rabbit_qos_prefetch_count", prefetch, group="oslo_messaging_rabbit")
    transport = oslo_messaging.get_notification_transport(conf, url=settings.transport_url)
    targets = [
        oslo_messaging.Target(topic=topic, exchange=exchange)
        for exchange in settings.exchanges
        for topic in settings.topics
    ]
    server = oslo_listener.BatchNotificationServer(
        transport,
        targets,
        _Dispatcher(relay, settings.priorities),
        executor="threading",
        allow_requeue=True,
        pool=settings.pool,
        batch_size=settings.batch_size,
        batch_timeout=settings.batch_timeout,
    )
    return transport, server
