"""The Celery result backend, for split runs' chords only (a leaf module).

Split full syncs (``sync.split``) run as a chord: Redis counts the finished
parts and keeps their outcomes for the finish task. Nothing in cloudsync
ever waits on a task's result (no ``.get()``), and every task ignores its
own, so this backend is Celery's Redis backend without the client side of
results: no process subscribes to result notifications. Celery's would
subscribe for every task a process sends without ``ignore_result`` and for
every chord part (a Pub/Sub connection per process, and results held until
garbage-collected, whose unsubscribe blocks up to 20 s while Redis is down).
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend

__all__ = ["ChordBackend", "backend_url"]


def backend_url(redis_url: str) -> str:
    """``result_backend`` for this backend at ``redis_url`` (Celery's
    ``<class>+<url>`` form)."""
    return f"sync.result_backend:ChordBackend+{redis_url}"


class ChordBackend(RedisBackend):
    """Redis result backend that never subscribes to results."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        return result

    def add_pending_results(self, results: Any, weak: bool = False) -> Any:
        return results

    def remove_pending_result(self, result: Any) -> Any:
        return result
