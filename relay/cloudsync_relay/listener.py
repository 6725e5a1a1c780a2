"""The bus side: an oslo.messaging batch notification listener in the relay's
own pool, handing each batch to ``Relay.handle``.

``Relay.handle`` gets the raw incoming messages and returns those to requeue;
oslo.messaging's ``BatchNotificationServer`` then acknowledges every other
message of the batch and requeues these (``allow_requeue=True``). So a message
leaves the bus only after cloudsync answered 202 for it, refused it for good,
or it was found malformed (both logged), or it kept failing alone while
cloudsync accepted others (``Attempts``, ``max_attempts``: logged at ERROR).
Messages the driver itself cannot decode (not JSON, a broken
``oslo.message``) are rejected by oslo.messaging's rabbit driver before they
reach us; the relay counts them as dropped too.

``handle`` never raises (oslo.messaging would requeue the whole batch at
once, forever): whatever fails while preparing one message drops that
message as malformed; an unexpected error while delivering requeues the
batch after the shared backoff.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import oslo_messaging
from oslo_messaging import dispatcher as oslo_dispatcher
from oslo_messaging.notify import listener as oslo_listener

from cloudsync_relay.config import Settings
from cloudsync_relay.delivery import Delivery, Outcome
from cloudsync_relay.health import Counters
from cloudsync_relay.notification import Malformed, encode, to_body

__all__ = ["Attempts", "Relay", "build_listener", "count_driver_drops"]

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


class Attempts:
    """Notifications that failed when posted alone, by key (``message_id``),
    and how many of those failures count: only a failure after which the
    endpoint is seen to have accepted some *other* POST since the previous
    one (or since the batch was taken). During an outage (every POST 503, or
    no answer) nothing is accepted, so nothing counts and nothing is ever
    given up. Bounded: the least recently failed keys are forgotten first."""

    def __init__(self, limit: int, size: int = 10000) -> None:
        self.limit = limit  # give up at this many counted failures (0: never)
        self.size = size
        self._entries: OrderedDict[str, tuple[int, int]] = OrderedDict()  # (count, accepted)
        self._lock = threading.Lock()

    def suspect(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def failed_alone(self, key: str, accepted_before: int, accepted_now: int) -> int:
        """Record a lone failure; the number of counted failures so far."""
        with self._lock:
            count, seen = self._entries.pop(key, (0, accepted_before))
            if accepted_now > seen:
                count += 1
            self._entries[key] = (count, accepted_now)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return count

    def exhausted(self, count: int) -> bool:
        return bool(self.limit) and count >= self.limit

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


class Relay:
    def __init__(
        self, settings: Settings, delivery: Delivery | None = None, counters: Counters | None = None
    ) -> None:
        self.settings = settings
        self.counters = counters or Counters()
        self.delivery = delivery or Delivery(
            settings.url, settings.secret, timeout=settings.timeout,
            verify=settings.verify, max_body_bytes=settings.max_body_bytes,
            on_post=self.counters.post,
        )  # fmt: skip
        self.stopping = threading.Event()
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, self.stopping)
        self.attempts = Attempts(settings.max_attempts)

    def handle(self, incoming: Sequence[Any]) -> set[Any]:
        """Relay a batch of incoming messages; return those to requeue.
        Never raises: an exception would make oslo.messaging requeue the
        whole batch at once, again and again."""
        items: list[tuple[Any, bytes]] = []
        keys: dict[Any, str] = {}
        malformed = 0
        for message in incoming:
            try:
                body = to_body(message.ctxt, message.message)
                encoded = encode(body)
            except Exception as exc:  # Malformed, or whatever else it makes fail
                malformed += 1
                log.warning(
                    "dropped a malformed message from the bus: %s (%s)",
                    exc if isinstance(exc, Malformed) else _error(exc),
                    _describe(message.message),
                )
                continue
            items.append((message, encoded))
            keys[message] = body["metadata"]["message_id"] or hashlib.sha1(encoded).hexdigest()
        if self.stopping.is_set():
            self.counters.add(dropped={"malformed": malformed}, requeued=len(items))
            return {m for m, _ in items}
        try:
            outcome = self._send(items, keys)
        except Exception as exc:
            log.exception("unexpected error while relaying %d notification(s)", len(items))
            outcome = Outcome(retry=[m for m, _ in items], retry_reason=_error(exc))
        exhausted = 0
        for message, reason in outcome.dropped:
            if reason.startswith(GAVE_UP):
                exhausted += 1
                log.error("dropped %s: %s", _describe(message.message), reason)
            else:
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
            dropped={
                "malformed": malformed,
                "refused": len(outcome.dropped) - exhausted,
                "retries_exhausted": exhausted,
            },
            requeued=len(requeue),
            posts=outcome.posts,
        )
        return requeue

    def _send(self, items: Sequence[tuple[Any, bytes]], keys: dict[Any, str]) -> Outcome[Any]:
        """POST the items, notifications that failed alone before last and
        each alone; give up on one that keeps failing alone while the
        endpoint accepts others (``Attempts``)."""
        accepted_before = self.delivery.accepted
        suspects = [item for item in items if self.attempts.suspect(keys[item[0]])]
        others = [item for item in items if not self.attempts.suspect(keys[item[0]])]
        outcome: Outcome[Any] = self.delivery.send(others) if others else Outcome()
        blocked = bool(outcome.retry) and len(outcome.delivered) + len(outcome.dropped) == 0
        for item in suspects:
            if blocked:  # the endpoint takes nothing now: no POST
                outcome.retry.append(item[0])
                continue
            alone = self.delivery.send([item])
            outcome.merge(alone)
            blocked = bool(alone.retry) and self.delivery.accepted == accepted_before
        for message in outcome.delivered:
            self.attempts.forget(keys[message])
        for message, _ in outcome.dropped:
            self.attempts.forget(keys[message])
        accepted_now = self.delivery.accepted
        for message, answer in outcome.failed_alone:
            key = keys[message]
            count = self.attempts.failed_alone(key, accepted_before, accepted_now)
            if self.attempts.exhausted(count):
                self.attempts.forget(key)
                outcome.retry.remove(message)
                outcome.dropped.append((
                    message,
                    f"{GAVE_UP} {count} times alone while the endpoint accepted other "
                    f"notifications (MAX_ATTEMPTS={self.attempts.limit}), last {answer}",
                ))  # fmt: skip
        return outcome


GAVE_UP = "given up: refused or failed"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _short(value: Any) -> str:
    if value is None or isinstance(value, str):
        return repr(value if value is None or len(value) <= 200 else value[:200] + "...")
    return f"a {type(value).__name__}"


def _describe(message: Any) -> str:
    if not isinstance(message, dict):
        return f"a {type(message).__name__}"
    event_type = _short(message.get("event_type"))
    message_id = _short(message.get("message_id"))
    publisher = _short(message.get("publisher_id"))
    return f"event_type={event_type} message_id={message_id} publisher_id={publisher}"


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
            self.counters.add(dropped={"undecodable": 1})
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
