"""Counters and the health line the relay logs every ``health_interval``.

Counts are notifications: *relayed* (answered 202), *dropped* (acknowledged
and logged without a 202, by reason: ``malformed`` on the bus, ``undecodable``
by the driver, ``refused`` for good by the endpoint, ``retries_exhausted``:
failed alone too often while the endpoint accepted others), *requeued*
(given back to the bus to be retried later). A sink (the Prometheus exporter,
``cloudsync_relay.metrics``) can be attached to see every count as it is added,
and every POST's answer and duration.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DROP_REASONS", "Counters", "HealthLogger", "Sink"]

DROP_REASONS = ("malformed", "undecodable", "refused", "retries_exhausted")

log = logging.getLogger("cloudsync_relay")


@dataclass
class Counts:
    relayed: int = 0
    dropped: int = 0
    requeued: int = 0
    posts: int = 0


class Sink(Protocol):
    def add(self, relayed: int, dropped: dict[str, int], requeued: int) -> None: ...

    def post(self, status: int | None, seconds: float) -> None: ...


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Counts()
        self._window = Counts()
        self.sinks: list[Sink] = []

    def add(
        self,
        *,
        relayed: int = 0,
        dropped: int | dict[str, int] = 0,
        requeued: int = 0,
        posts: int = 0,
    ) -> None:
        """``dropped``: a count by reason, or a count of malformed messages."""
        by_reason = dropped if isinstance(dropped, dict) else {"malformed": dropped}
        by_reason = {reason: n for reason, n in by_reason.items() if n}
        n_dropped = sum(by_reason.values())
        with self._lock:
            for counts in (self.total, self._window):
                counts.relayed += relayed
                counts.dropped += n_dropped
                counts.requeued += requeued
                counts.posts += posts
        for sink in self.sinks:
            sink.add(relayed, by_reason, requeued)

    def post(self, status: int | None, seconds: float) -> None:
        """One POST answered ``status`` (None: no HTTP answer) in ``seconds``."""
        for sink in self.sinks:
            sink.post(status, seconds)

    def take_window(self) -> tuple[Counts, Counts]:
        """(counts since the last call, totals), and start a new window."""
        with self._lock:
            window, self._window = self._window, Counts()
            total = Counts(**vars(self.total))
        return window, total


def health_line(window: Counts, total: Counts, seconds: float) -> str:
    return (
        f"health: last {seconds:.0f} s relayed {window.relayed}, dropped {window.dropped}, "
        f"requeued {window.requeued} ({window.posts} POSTs); since start relayed "
        f"{total.relayed}, dropped {total.dropped}, requeued {total.requeued}"
    )


class HealthLogger(threading.Thread):
    """Logs the health line every ``interval`` seconds until stopped."""

    def __init__(self, counters: Counters, interval: float) -> None:
        super().__init__(name="cloudsync-relay-health", daemon=True)
        self.counters = counters
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        last = time.monotonic()
        while not self._stopping.wait(self.interval):
            now = time.monotonic()
            window, total = self.counters.take_window()
            log.info(health_line(window, total, now - last))
            last = now

    def stop(self) -> None:
        self._stopping.set()
