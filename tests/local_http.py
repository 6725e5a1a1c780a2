"""A small HTTP server on 127.0.0.1 for tests that need something real at
the other end of a URL (an AWS API answering errors, an SNS SubscribeURL).

Subclass ``QuietHandler`` (no access lines on stderr) and hand the class to
``LocalHttpServer``: it listens on a free port, serves from a daemon thread
and is stopped with ``close()``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LocalHttpServer", "QuietHandler"]


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class LocalHttpServer:
    """``handler`` served on a free 127.0.0.1 port from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
