"""POSTing notifications to the endpoint, and what each answer means.

The contract (cloudsync README, *Connecting OpenStack*):

* **202**: queued in cloudsync; the messages are acknowledged on the bus.
* **400, 404, 409, 413, 501**: refused for good (a body cloudsync cannot take,
  an unknown provider, cloud sync disabled, too large, driver not installed);
  the messages are acknowledged and dropped with a log line naming the reason.
  A *batch* refused with 400 or 413 is halved and each half sent again, so
  only the notification at fault is dropped.
* anything else (**401** during a secret rotation, **5xx**, **503** while
  Redis is down, a proxy's 429 or 403, a network error or a timeout): the
  messages are requeued on the bus, after a backoff. A *batch* answered with
  such an HTTP status (not 401, and not a network error: those are never one
  notification's fault) is halved too, so that a notification a WAF keeps
  refusing (403, 429) or that makes the endpoint fail (5xx) ends up posted
  alone: ``Outcome.failed_alone`` names those, and the relay decides whether
  to give up on one (``listener.Attempts``).

A batch is one JSON array per POST, cut so that no body exceeds
``max_body_bytes`` (a single notification larger than that is still sent and
then dropped on its 413).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import requests
from requests.adapters import HTTPAdapter

from cloudsync_relay import __version__

__all__ = ["Answer", "Delivery", "Outcome", "PERMANENT", "pack"]

log = logging.getLogger("cloudsync_relay")

PERMANENT = frozenset({400, 404, 409, 413, 501})
SPLITTABLE = frozenset({400, 413})  # may be one notification's fault in a batch
# Retryable answers that are never one notification's fault: not split.
CREDENTIALS = frozenset({401, 407})

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (network error, timeout)
    reason: str

    @property
    def accepted(self) -> bool:
        return self.status == 202

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT

    @property
    def isolating(self) -> bool:
        """A retryable HTTP answer that may be one notification's fault (a
        WAF's 403 or 429, a 5xx): worth posting a batch's halves apart."""
        return (
            self.status is not None
            and self.status != 202
            and self.status not in PERMANENT
            and self.status not in CREDENTIALS
        )

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.reason}" if self.status else self.reason


@dataclass
class Outcome(Generic[T]):
    """What became of each item handed to ``Delivery.send``."""

    delivered: list[T] = field(default_factory=list)
    dropped: list[tuple[T, str]] = field(default_factory=list)
    retry: list[T] = field(default_factory=list)
    retry_reason: str = ""
    posts: int = 0
    # (item, answer) of items posted alone that got an ``isolating`` answer
    # (they are in ``retry`` too)
    failed_alone: list[tuple[T, Answer]] = field(default_factory=list)

    def merge(self, other: Outcome[T]) -> None:
        self.delivered.extend(other.delivered)
        self.dropped.extend(other.dropped)
        self.retry.extend(other.retry)
        self.retry_reason = self.retry_reason or other.retry_reason
        self.posts += other.posts
        self.failed_alone.extend(other.failed_alone)


def pack(items: Sequence[tuple[T, bytes]], max_bytes: int) -> list[list[tuple[T, bytes]]]:
    """Consecutive runs of items whose JSON array stays under ``max_bytes``
    (an item larger than that on its own is a run of one)."""
    runs: list[list[tuple[T, bytes]]] = []
    current: list[tuple[T, bytes]] = []
    size = 2  # "[" + "]"
    for item in items:
        extra = len(item[1]) + (1 if current else 0)
        if current and size + extra > max_bytes:
            runs.append(current)
            current, size = [], 2
            extra = len(item[1])
        current.append(item)
        size += extra
    if current:
        runs.append(current)
    return runs


def _body(run: Sequence[tuple[Any, bytes]]) -> bytes:
    if len(run) == 1:
        return run[0][1]
    return b"[" + b",".join(encoded for _, encoded in run) + b"]"


class Delivery:
    """One HTTP session to the endpoint (keep-alive), used by several threads."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
        max_body_bytes: int = 1048576,
        on_post: Callable[[int | None, float], None] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.on_post = on_post  # (status or None, seconds) of every POST
        self._accepted = 0
        self._accepted_lock = threading.Lock()
        self._session = requests.Session()
        self._session.verify = verify
        self._session.headers.update({
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "User-Agent": f"cloudsync-relay/{__version__}",
        })  # fmt: skip
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    @property
    def accepted(self) -> int:
        """POSTs answered 202 so far (by every thread): tells whether the
        endpoint took something else since a given moment."""
        with self._accepted_lock:
            return self._accepted

    def post(self, body: bytes) -> Answer:
        """One POST; never raises for HTTP or network trouble."""
        started = time.monotonic()
        answer = self._post(body)
        if answer.accepted:
            with self._accepted_lock:
                self._accepted += 1
        if self.on_post is not None:
            self.on_post(answer.status, time.monotonic() - started)
        return answer

    def _post(self, body: bytes) -> Answer:
        try:
            response = self._session.post(self.url, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            return Answer(None, _network_reason(exc))
        if response.status_code == 202:
            return Answer(202, "accepted")
        return Answer(response.status_code, _error_text(response))

    def send(self, items: Sequence[tuple[T, bytes]]) -> Outcome[T]:
        """Deliver ``(handle, encoded notification)`` items: POST them in
        runs under the size limit; after the first answer that asks for a
        retry, the runs not yet sent are retried too (without a POST)."""
        outcome: Outcome[T] = Outcome()
        runs = pack(items, self.max_body_bytes)
        for index, run in enumerate(runs):
            if not self._send_run(run, outcome):
                for rest in runs[index + 1 :]:
                    outcome.retry.extend(handle for handle, _ in rest)
                break
        return outcome

    def _send_run(self, run: Sequence[tuple[T, bytes]], outcome: Outcome[T]) -> bool:
        """False when the endpoint asked for a retry (stop sending)."""
        answer = self.post(_body(run))
        outcome.posts += 1
        if answer.accepted:
            outcome.delivered.extend(handle for handle, _ in run)
            return True
        if len(run) > 1 and (answer.status in SPLITTABLE or answer.isolating):
            half = len(run) // 2
            if self._send_run(run[:half], outcome):
                return self._send_run(run[half:], outcome)
            outcome.retry.extend(handle for handle, _ in run[half:])
            return False
        if answer.permanent:
            outcome.dropped.extend((handle, str(answer)) for handle, _ in run)
            return True
        outcome.retry.extend(handle for handle, _ in run)
        if len(run) == 1 and answer.isolating:
            outcome.failed_alone.append((run[0][0], answer))
        outcome.retry_reason = str(answer)
        return False


def _error_text(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    text = " ".join(response.text.split())
    return text[:200] or response.reason or "no reason given"


def _network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        inner = exc.args[0] if exc.args else exc
        reason = getattr(inner, "reason", None) or inner
        text = str(reason)
        for marker in (
            "Connection refused",
            "Name or service not known",
            "No route to host",
            "Connection reset",
            "certificate verify failed",
        ):
            if marker in text:
                return f"network error: {marker.lower()}"
        return f"network error: {text[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"
