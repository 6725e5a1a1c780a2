"""Counters and the health line the relay logs every ``health_interval``.

Counts are notifications: *relayed* (answered 202), *dropped* (refused for
good by the endpoint, or malformed on the bus: acknowledged and logged),
*requeued* (given back to the bus to be retried later).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

__all__ = ["Counters", "HealthLogger"]

log = logging.getLogger("cloudsync_relay")


@dataclass
class Counts:
    relayed: int = 0
    dropped: int = 0
    requeued: int = 0
    posts: int = 0


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Counts()
        self._window = Counts()

    def add(self, *, relayed: int = 0, dropped: int = 0, requeued: int = 0, posts: int = 0) -> None:
        with self._lock:
            for counts in (self.total, self._window):
                counts.relayed += relayed
                counts.dropped += dropped
                counts.requeued += requeued
                counts.posts += posts

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
