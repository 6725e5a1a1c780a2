"""A web application firewall in front of the endpoint, for the relay's
tests: a real HTTP server answering 403 for any body that contains
``poison`` and forwarding everything else to the endpoint (status and body
passed back as they are)."""

from __future__ import annotations

import requests

from tests.local_http import LocalHttpServer, QuietHandler

__all__ = ["BLOCKED", "waf_in_front_of"]

BLOCKED = b"<html>Request blocked by WAF</html>"


class _Waf(QuietHandler):
    upstream = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b"poison" in body:
            status, text = 403, BLOCKED
        else:
            headers = {
                "Authorization": self.headers["Authorization"],
                "Content-Type": "application/json",
            }
            answer = requests.post(
                self.upstream + self.path, data=body, headers=headers, timeout=30
            )
            status, text = answer.status_code, answer.content
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


def waf_in_front_of(upstream: str) -> LocalHttpServer:
    """The WAF on a free port, forwarding to ``upstream`` (a base URL)."""
    return LocalHttpServer(type("Waf", (_Waf,), {"upstream": upstream}))
