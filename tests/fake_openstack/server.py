"""A real threaded HTTP server that speaks enough OpenStack for openstacksdk.

Keystone v3 (discovery, password and application-credential tokens with a
service catalog, projects), Nova v2.1 (microversioned discovery, servers with
``limit``/``marker``/``all_tenants``/``changes-since``, flavors with extra
specs), Glance v2 images and Neutron v2.0 ports and floating IPs, all on
``127.0.0.1`` and a free port. Faults can be injected per path (status codes,
slow answers, dropped connections) and every request is counted, so tests can
drive the real SDK through the failure modes a full sync must survive.

Usage::

    with FakeOpenStack() as fake:
        fake.data.add_servers(2500)
        fake.fail(500, path="/compute/v2.1/servers/detail", after=1)
        driver.list_inventory(fake.client_config())
        assert fake.count("/compute/v2.1/servers/detail") == 2
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_openstack import api
from tests.fake_openstack.data import FakeCloud

__all__ = ["Fault", "FakeOpenStack"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path starts with ``path``
    (after letting ``after`` of them through) with a status, a delay or a
    dropped connection."""

    path: str = ""
    method: str | None = None
    times: int = 1
    after: int = 0
    status: int | None = None
    delay: float | None = None
    drop: bool = False
    message: str | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus
    # the client's delayed ACK adds ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self._path = path
        fault = fake._record(method, path, parts.query)
        if fault is not None:
            if fault.delay:
                fake._stopping.wait(fault.delay)
            if fault.drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.status:
                self._send(*api.error(fault.status, fault.message, path))
                return
        try:
            result = api.dispatch(fake, method, path, query, self.headers, body)
        except Exception as exc:  # a bug in the fake must show up as a 500, not a hang
            result = api.error(500, f"fake server error: {exc!r}", path)
        self._send(*result)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else _ENCODER.encode(payload).encode()
        self.server.fake._answered(self._path, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64
    fake: FakeOpenStack


class FakeOpenStack:
    """The fake cloud: ``data`` (a FakeCloud), switches, faults and counters.

    Switches (plain attributes, change them any time):
      ``reject_tokens`` every token request answers 401;
      ``projects_forbidden`` GET /v3/projects answers 403;
      ``nova_marker_bug`` a deleted server as page marker answers 400
      "marker [id] not found" (Nova before the read_deleted fix);
      ``compute_max_microversion`` e.g. "2.96" (lower it to test negotiation);
      ``nova_max_limit`` / ``glance_max_limit`` page size caps (1000);
      ``catalog_exclude`` service types left out of the token's catalog.
    """

    def __init__(self, data: FakeCloud | None = None, *, page_cache_bytes: int = 256 << 20):
        self.data = data or FakeCloud()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.page_cache_bytes = page_cache_bytes
        self._pages: OrderedDict[tuple, bytes] = OrderedDict()
        self._pages_size = 0
        self.tokens: dict[str, str] = {}
        self.reset_switches()
        self.faults: list[Fault] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.log: deque[tuple[str, str, str]] = deque(maxlen=10000)
        self.answers: deque[tuple[str, int]] = deque(maxlen=10000)

    # -- lifecycle -------------------------------------------------------
    def start(self) -> FakeOpenStack:
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity"

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """A provider ``client_config`` that authenticates as the fake admin."""
        config: dict[str, Any] = {
            "auth_url": self.auth_url,
            "username": "admin",
            "password": "secret",
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region_name": "RegionOne",
        }
        config.update(overrides)
        return {k: v for k, v in config.items() if v is not None}

    def reset_switches(self) -> None:
        self.reject_tokens = False
        self.projects_forbidden = False
        self.nova_marker_bug = False
        self.compute_max_microversion = "2.96"
        self.nova_max_limit = 1000
        self.glance_max_limit = 1000
        self.glance_default_limit = 25
        self.catalog_exclude: set[str] = set()

    def reset(self, data: FakeCloud | None = None) -> None:
        """Fresh data, no faults, zero counters, default switches (tokens stay)."""
        with self._lock:
            self.data = data or FakeCloud()
            self.faults.clear()
            self.counts.clear()
            self.log.clear()
            self.answers.clear()
            self._pages.clear()
            self._pages_size = 0
        self.reset_switches()

    # -- faults ------------------------------------------------------------
    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(
        self, status: int, path: str = "", *, times: int = 1, after: int = 0, **kw: Any
    ) -> Fault:
        """Answer matching requests with ``status`` (OpenStack-style error body)."""
        return self.inject(Fault(path=path, status=status, times=times, after=after, **kw))

    def slow(
        self, seconds: float, path: str = "", *, times: int = 1, after: int = 0, **kw: Any
    ) -> Fault:
        """Delay matching requests by ``seconds`` before answering normally."""
        return self.inject(Fault(path=path, delay=seconds, times=times, after=after, **kw))

    def drop(self, path: str = "", *, times: int = 1, after: int = 0, **kw: Any) -> Fault:
        """Close the connection of matching requests without an answer."""
        return self.inject(Fault(path=path, drop=True, times=times, after=after, **kw))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (clients must re-authenticate)."""
        with self._lock:
            self.tokens.clear()

    # -- counters ------------------------------------------------------------
    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        """Requests seen whose path starts with ``path_prefix`` (faulted ones too)."""
        with self._lock:
            return sum(
                n
                for (m, p), n in self.counts.items()
                if p.startswith(path_prefix) and (method is None or m == method)
            )

    def requests(self, path_prefix: str = "") -> list[tuple[str, str, str]]:
        """(method, path, query string) of the last requests, oldest first."""
        with self._lock:
            return [r for r in self.log if r[1].startswith(path_prefix)]

    def statuses(self, path_prefix: str = "") -> list[int]:
        """HTTP status of the last answers on matching paths, oldest first
        (dropped connections have none)."""
        with self._lock:
            return [status for p, status in self.answers if p.startswith(path_prefix)]

    def _answered(self, path: str, status: int) -> None:
        with self._lock:
            self.answers.append((path, status))

    def _record(self, method: str, path: str, query: str) -> Fault | None:
        with self._lock:
            self.counts[(method, path)] += 1
            self.log.append((method, path, query))
            for fault in self.faults:
                if fault.times <= 0 or not path.startswith(fault.path):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    # -- page cache (used by api) -----------------------------------------------
    def cached_page(self, key: tuple, build: Any) -> bytes:
        """Serialized page for ``key`` (which includes the collection generation)."""
        with self._lock:
            data = self._pages.get(key)
            if data is not None:
                self._pages.move_to_end(key)
                return data
        data = _ENCODER.encode(build()).encode()
        with self._lock:
            if key not in self._pages:
                self._pages[key] = data
                self._pages_size += len(data)
            while self._pages_size > self.page_cache_bytes and self._pages:
                _, old = self._pages.popitem(last=False)
                self._pages_size -= len(old)
        return data
