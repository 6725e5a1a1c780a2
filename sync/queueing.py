"""Publishing webhook bodies to the Celery broker, for the request path.

The endpoint's cost is dominated by publishing (DESIGN §6: Celery's
``apply_async`` halves the endpoint's throughput). So the request path writes
the Celery protocol-2 message that ``sync.tasks.ingest`` expects straight
onto the queue's Redis list, the way kombu's Redis transport does: one LPUSH
per request and nothing else. Workers consume it as an ordinary Celery task
(Flower shows it as such).

Measured (``bench/ingest.py``), even redis-py's per-command overhead (pool
checkout, an extra readiness ``recv``, retry and observability wrappers:
~30 µs of CPU against ~4 µs for the same LPUSH on a plain socket) was a large
part of what the endpoint adds to a bare Django view. So for ``redis://`` and
``unix://`` broker URLs each process (and thread) keeps one plain socket to
Redis and writes the RESP command itself; the message is filled into a
template precompiled from the readable ``_message`` below, byte for byte what
it returns. Other URLs (``rediss://``, query options) go through redis-py.

Publishing never retries a command Redis may have seen: a producer that gets
a 503 retries itself, which is better than holding a web worker while Redis is
down. The one exception is a kept connection found closed before Redis
answered anything (Redis restarted since the last request): that command is
sent once more on a fresh connection.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import redis
from redis.exceptions import RedisError

from project.celery import app as celery_app
from sync import names

__all__ = [
    "BrokerUnavailable", "INGEST_QUEUE", "broker_url", "enqueue_ingest", "reset_broker", "send_chord",
    "send_task",
]

INGEST_TASK = names.INGEST
INGEST_QUEUE = names.EVENTS_QUEUE
_ORIGIN = f"cloudsync-web@{socket.gethostname()}:{os.getpid()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_CONNECT_TIMEOUT = 2.0
_SOCKET_TIMEOUT = 5.0


class BrokerUnavailable(Exception):
    """The broker did not accept the message."""


def _message(task_id: str, kwargs: dict, kwargsrepr: str, delivery_tag: str) -> bytes:
    """The Celery protocol-2 message, as kombu's Redis transport stores it."""
    body = json.dumps([[], kwargs, _EMBED]).encode()
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": INGEST_TASK,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [celery_app.conf.task_time_limit, celery_app.conf.task_soft_time_limit],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": "()",
                "kwargsrepr": kwargsrepr,
                "origin": _ORIGIN,
                "ignore_result": True,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": INGEST_QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": delivery_tag,
            },
        },
        separators=(",", ":"),
    ).encode()


def _template() -> bytes:
    """``_message`` as a ``%``-template: the id, kwargsrepr, tag and base64 body open.

    The placeholders are ASCII that JSON leaves as they are, and so must the
    values put in their place be (ids, base64, the fixed kwargsrepr).
    """
    kwargs = {"provider_id": 0, "body": "", "received_at": ""}
    sample = _message("@@id@@", kwargs, "@@kwargsrepr@@", "@@tag@@").decode()
    body = base64.b64encode(json.dumps([[], kwargs, _EMBED]).encode()).decode()
    text = sample.replace("%", "%%").replace(body, "%(body)s")
    for name in ("id", "kwargsrepr", "tag"):
        text = text.replace(f"@@{name}@@", f"%({name})s")
    return text.encode()


_MESSAGE = _template()
_EMBED_JSON = json.dumps(_EMBED).encode()


def _fast_message(
    task_id: str, provider_id: int, body: str, received_at: str, kwargsrepr: str, tag: str
) -> bytes:
    """``_message()`` of the ingest kwargs: the same bytes, several times cheaper."""
    celery_body = b"".join(
        (
            b'[[], {"provider_id": ',
            str(provider_id).encode(),
            b', "body": ',
            json.dumps(body).encode(),
            b', "received_at": ',
            json.dumps(received_at).encode(),
            b"}, ",
            _EMBED_JSON,
            b"]",
        )
    )
    return _MESSAGE % {
        b"body": base64.b64encode(celery_body),
        b"id": task_id.encode(),
        b"kwargsrepr": kwargsrepr.encode(),
        b"tag": tag.encode(),
    }


class _Resp:
    """One kept connection to Redis speaking just enough RESP for LPUSH."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address: tuple[str, int] | str
        if parts.scheme == "unix":
            self.family, self.address = socket.AF_UNIX, unquote(parts.path)
            db = "0"
        else:
            self.family = socket.AF_INET
            self.address = (parts.hostname or "localhost", parts.port or 6379)
            db = parts.path.strip("/") or "0"
        self.handshake: list[tuple[bytes, ...]] = []
        if parts.password is not None:
            user = unquote(parts.username) if parts.username else None
            self.handshake.append(
                (b"AUTH", *((user.encode(),) if user else ()), unquote(parts.password).encode())
            )
        if int(db):
            self.handshake.append((b"SELECT", db.encode()))
        self.sock: socket.socket | None = None
        self.pid = 0

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _connect(self) -> socket.socket:
        if self.family == socket.AF_INET:
            sock = socket.create_connection(self.address, timeout=_CONNECT_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(_CONNECT_TIMEOUT)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
        sock.settimeout(_SOCKET_TIMEOUT)
        try:
            if self.handshake:
                sock.sendall(b"".join(_pack(*command) for command in self.handshake))
                data = b""
                while data.count(b"\r\n") < len(self.handshake):
                    chunk = sock.recv(512)
                    if not chunk:
                        raise ConnectionError("Redis closed the connection")
                    data += chunk
                for command, reply in zip(self.handshake, data.split(b"\r\n"), strict=False):
                    if not reply.startswith(b"+"):
                        raise RedisError(f"{command[0].decode()}: {reply.decode(errors='replace')}")
        except BaseException:
            sock.close()
            raise
        return sock

    def call(self, packed: bytes) -> bytes:
        """Send one packed command, return its reply line (without CRLF)."""
        if self.sock is not None and self.pid == os.getpid():
            try:
                return self._roundtrip(packed)
            except _Closed:
                self.close()  # Redis closed it since: try once on a fresh one
        self.sock = None  # a socket inherited through fork is the parent's
        self.sock, self.pid = self._connect(), os.getpid()
        try:
            return self._roundtrip(packed)
        except _Closed as exc:
            self.close()
            raise ConnectionError("Redis closed the connection") from exc

    def _roundtrip(self, packed: bytes) -> bytes:
        sock = self.sock
        try:
            try:
                sock.sendall(packed)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _Closed from exc
            return _reply(sock)
        except _Closed:
            raise
        except BaseException:
            self.close()  # state unknown (timeout, error): never reuse it
            raise


class _Closed(Exception):
    """The connection was found closed before any byte of the reply."""


def _pack(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(out)


def _reply(sock: socket.socket) -> bytes:
    """One simple reply line (``+``, ``-`` or ``:``) from Redis."""
    try:
        data = sock.recv(512)
    except ConnectionResetError as exc:
        raise _Closed from exc
    if not data:
        raise _Closed
    while not data.endswith(b"\r\n"):
        more = sock.recv(512)
        if not more:
            raise ConnectionError("Redis closed the connection mid-reply")
        data += more
    return data[:-2]


_local = threading.local()


def _resp(url: str) -> _Resp | None:
    """This thread's kept connection for url; None when url needs redis-py."""
    connections = getattr(_local, "connections", None)
    if connections is None:
        connections = _local.connections = {}
    try:
        return connections[url]
    except KeyError:
        parts = urlsplit(url)
        db = parts.path.strip("/") if parts.scheme == "redis" else ""
        plain = parts.scheme in ("redis", "unix") and not parts.query and (not db or db.isdigit())
        connections[url] = conn = _Resp(url) if plain else None
        return conn


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=_CONNECT_TIMEOUT,
        socket_timeout=_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


# The message goes onto the queue and into the journal (sync/journal.py) in
# one atomic script: kombu's Redis transport pops a message (BRPOP) before it
# records it as unacknowledged, and a worker or Redis killed in between would
# otherwise lose it. The worker forgets the journal entry once the inbox has it.
JOURNAL_MESSAGES = "cloudsync.journal"
JOURNAL_TIMES = "cloudsync.journal.at"
_ENQUEUE_SCRIPT = (
    b"redis.call('LPUSH', KEYS[1], ARGV[1]); "
    b"redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]); "
    b"return redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])"
)
_EVAL_HEAD = b"".join((
    b"*9\r\n$4\r\nEVAL\r\n", b"$%d\r\n%s\r\n" % (len(_ENQUEUE_SCRIPT), _ENQUEUE_SCRIPT),
    b"$1\r\n3\r\n",
    *(b"$%d\r\n%s\r\n" % (len(k), k) for k in (
        INGEST_QUEUE.encode(), JOURNAL_MESSAGES.encode(), JOURNAL_TIMES.encode())),
))


_broker: list[str] = []


def broker_url() -> str:
    """Celery's broker URL, read once per process (Celery's lazy settings
    lookup costs more than the LPUSH it is for)."""
    if not _broker:
        _broker.append(celery_app.conf.broker_url)
    return _broker[0]


def reset_broker() -> None:
    """Read the broker URL again (tests that point Celery elsewhere)."""
    _broker.clear()


def enqueue_ingest(provider_id: int, body: str, received_at: datetime) -> str:
    """Queue one webhook body for ``sync.tasks.ingest``; returns the task id."""
    task_id = str(uuid.uuid4())
    # Flower shows kwargsrepr: never the body (it may be large or sensitive).
    kwargsrepr = f"{{'provider_id': {provider_id}, 'body': '<{len(body)} chars>'}}"
    message = _fast_message(
        task_id, provider_id, body, received_at.isoformat(), kwargsrepr, str(uuid.uuid4())
    )
    url = broker_url()
    now = b"%.3f" % time.time()
    try:
        conn = _resp(url)
        if conn is None:
            _client(url).eval(_ENQUEUE_SCRIPT.decode(), 3, INGEST_QUEUE, JOURNAL_MESSAGES,
                              JOURNAL_TIMES, message, task_id, now.decode())
        else:
            tid = task_id.encode()
            reply = conn.call(b"".join((
                _EVAL_HEAD, b"$%d\r\n" % len(message), message,
                b"\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(tid), tid, len(now), now),
            )))
            if not reply.startswith(b":"):
                raise RedisError(reply.decode(errors="replace"))
    except (RedisError, OSError, ValueError) as exc:  # ValueError: a URL redis-py refuses
        raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
    return task_id


def send_task(name: str, *, countdown: float | None = None, **kwargs: object) -> None:
    """Queue a task by name (routed by ``task_routes``), for services that must
    not import ``sync.tasks`` (tasks import services, never the other way).
    Raises if the broker does not take it. Nothing waits for a result
    (``ignore_result``: the sender does not subscribe to one in the result
    backend, which only split runs' chords use)."""
    celery_app.send_task(name, kwargs=kwargs, countdown=countdown, retry=False,
                         ignore_result=True)


def send_chord(
    header: list[tuple[str, dict]], body: tuple[str, dict], *, on_error: tuple[str, dict]
) -> None:
    """Queue tasks by name as a Celery chord: the ``header`` tasks in
    parallel, then ``body`` once with the list of their results (the result
    backend, Redis, counts the finished parts). ``on_error`` is called if
    the chord fails (a header task itself failed: lost to the time limit)
    instead of the body. Raises if the broker does not take it."""
    from celery import chord

    # ignore_result: no task stores a result of its own, and the sender does
    # not subscribe to any; the backend keeps only the chord's list of part
    # results, which the body receives (and which expires with result_expires).
    quiet = {"ignore_result": True}
    parts = [celery_app.signature(name, kwargs=kwargs, options=quiet) for name, kwargs in header]
    callback = celery_app.signature(body[0], kwargs=body[1], options=quiet)
    callback.on_error(celery_app.signature(on_error[0], kwargs=on_error[1], options=quiet))
    chord(parts, callback).apply_async(retry=False, **quiet)
