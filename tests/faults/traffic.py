"""Producers for the fault suite: real HTTP POSTs to the private gunicorn,
from a thread pool, every answer recorded (a connection error is status 0)."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["Answer", "Answers", "post_all", "post_one", "post_while"]


@dataclass(frozen=True)
class Answer:
    """One POST: the message keys its body carried and what came back."""

    keys: tuple[str, ...]
    status: int  # 0: no HTTP answer (connection refused/reset, timeout)
    body: bytes
    at: float  # time.monotonic() when the answer came


@dataclass
class Answers:
    items: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.items.append(answer)

    def extend(self, other: Answers) -> None:
        with self.lock:
            self.items.extend(other.items)

    def statuses(self) -> Counter:
        return Counter(a.status for a in self.items)

    def accepted_keys(self) -> set[str]:
        return {k for a in self.items if a.status == 202 for k in a.keys}

    def keys_with(self, predicate: Callable[[int], bool]) -> set[str]:
        return {k for a in self.items if predicate(a.status) for k in a.keys}


def post_one(port: int, provider_id: int, secret: str, body: bytes, keys: Sequence[str],
             timeout: float = 30) -> Answer:
    """One POST on a fresh connection (gunicorn sync workers close it anyway)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/cloud-sync/provider/{provider_id}/", body=body, headers={
            "Authorization": f"Bearer {secret}", "Content-Type": "application/json",
        })
        response = conn.getresponse()
        return Answer(tuple(keys), response.status, response.read(), time.monotonic())
    except (OSError, http.client.HTTPException) as exc:
        return Answer(tuple(keys), 0, repr(exc).encode(), time.monotonic())
    finally:
        conn.close()


def post_all(port: int, provider_id: int, secret: str,
             bodies: Iterable[tuple[bytes, Sequence[str]]], threads: int = 8) -> Answers:
    """POST every (body, keys) from ``threads`` threads; wait for all answers."""
    answers = Answers()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for answer in pool.map(lambda item: post_one(port, provider_id, secret, *item), bodies):
            answers.add(answer)
    return answers


def post_while(port: int, provider_id: int, secret: str,
               bodies: Iterable[tuple[bytes, Sequence[str]]], stop: threading.Event,
               answers: Answers, threads: int = 4, pause: float = 0.0) -> threading.Thread:
    """Background producers: POST bodies one after another until they run
    out or ``stop`` is set (used to post *during* an outage)."""
    source = iter(bodies)
    lock = threading.Lock()

    def run() -> None:
        while not stop.is_set():
            with lock:
                item = next(source, None)
            if item is None:
                return
            answers.add(post_one(port, provider_id, secret, *item))
            if pause:
                time.sleep(pause)

    def main() -> None:
        workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread
