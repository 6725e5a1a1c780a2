"""Paged reading of OpenStack listings through openstacksdk's proxies.

``Api`` is one authenticated SDK connection for one run: the SDK does auth,
catalog, version discovery and the microversion header, and we GET raw JSON
pages and follow ``limit``/``marker`` ourselves (DESIGN §8: 37x cheaper than
building SDK resources). ``server_pages`` also survives old Nova's
"marker not found" answer. Every failure raises a driver error naming the
listing.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from sync import jsontext
from sync.drivers.base import DriverError
from sync.drivers.openstack.connection import (
    api_message,
    build_connection,
    check_response,
    translate_errors,
)

__all__ = [
    "Api",
    "PAGE_SIZE",
    "has_next",
    "items_of",
    "pages",
    "parse_microversion",
    "server_pages",
]

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # Nova's and Glance's default maximum page size
# 2.69: servers in a down cell are listed (status UNKNOWN) instead of being
# silently skipped, which a full sync would take for deletions. 2.61 embeds
# extra_specs in flavors; from 2.47 servers embed their flavor by name.
WANTED_MICROVERSION = (2, 69)
MARKER_RETRIES = 5


def parse_microversion(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class Api:
    """One authenticated SDK connection for one run, with JSON helpers."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.conn = build_connection(config)
        self.microversion: str | None = None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing must never hide the real outcome
            log.debug("closing the OpenStack connection failed", exc_info=True)

    def authenticate(self) -> None:
        with translate_errors("authenticating with Keystone"):
            self.conn.authorize()

    def negotiate_compute(self) -> str | None:
        """The compute microversion to request: ours, capped by the cloud's."""
        with translate_errors("discovering the compute API"):
            data = self.conn.compute.get_endpoint_data()
        if data is None:
            raise DriverError("discovering the compute API failed: no compute endpoint")
        top = data.max_microversion
        if not top:
            self.microversion = None  # a pre-microversion API: plain v2.1
        else:
            want = min(WANTED_MICROVERSION, (int(top[0]), int(top[1])))
            self.microversion = f"{want[0]}.{want[1]}"
        return self.microversion

    def response(
        self, service: str, path: str, params: Mapping[str, Any], what: str
    ) -> requests.Response:
        kwargs: dict[str, Any] = {"params": dict(params)}
        if service == "compute" and self.microversion:
            kwargs["microversion"] = self.microversion
        with translate_errors(what):
            return getattr(self.conn, service).get(path, **kwargs)

    def json(self, response: requests.Response, what: str) -> dict[str, Any]:
        check_response(response, what)
        with translate_errors(what):
            body = response_json(response)
        if not isinstance(body, dict):
            raise DriverError(f"{what} failed: the answer is not a JSON object")
        return body

    def get(self, service: str, path: str, params: Mapping[str, Any], what: str) -> dict[str, Any]:
        return self.json(self.response(service, path, params, what), what)


def response_json(response: requests.Response) -> Any:
    """``response.json()``, read by ``jsontext.loads`` (orjson, where it reads
    the text as the standard library does) when the body is UTF-8, JSON's
    encoding (RFC 8259); a body declared in another charset, or with a byte
    order mark, is read by requests as before. A full sync reads every listed
    object here: the standard library's decoder was a twentieth of its CPU
    time."""
    encoding = (response.encoding or "utf-8").lower().replace("_", "-")
    content = response.content
    if encoding in ("utf-8", "utf8") and content and not content.startswith(b"\xef\xbb\xbf"):
        try:
            # (strict: bytes that are not UTF-8 are read by requests, its way)
            return jsontext.loads(content.decode("utf-8"))
        except ValueError:  # (not JSON, or not UTF-8: requests says which, as before)
            pass
    return response.json()


# -- pagination --------------------------------------------------------------------
def has_next(body: Mapping[str, Any], links_key: str) -> bool:
    if links_key == "next":  # Glance
        return bool(body.get("next"))
    links = body.get(links_key) or ()
    return any(isinstance(link, Mapping) and link.get("rel") == "next" for link in links)


def items_of(body: Mapping[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list):
        raise DriverError(f"{what} failed: the answer has no {key!r} list")
    return items


def pages(
    api: Api,
    service: str,
    path: str,
    params: Mapping[str, Any],
    what: str,
    key: str,
    links_key: str,
    page_size: int = PAGE_SIZE,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages following ``limit``/``marker`` until no next link."""
    marker: str | None = None
    while True:
        query = {**params, "limit": page_size, **({"marker": marker} if marker else {})}
        body = api.get(service, path, query, what)
        items = items_of(body, key, what)
        if items:
            yield items
        if not items or not has_next(body, links_key):
            return
        last = str(items[-1].get("id") or "")
        if not last or last == marker:
            raise DriverError(f"{what} failed: pagination does not advance (marker {last!r})")
        marker = last


def _is_marker_not_found(response: requests.Response) -> bool:
    if response.status_code != 400:
        return False
    text = api_message(response).lower()
    return "marker" in text and "not found" in text


def server_pages(api: Api, params: Mapping[str, Any], what: str) -> Iterator[list[dict[str, Any]]]:
    """Nova ``/servers/detail`` pages, surviving old Nova's "marker not found".

    Nova before the read_deleted fix answers 400 when the marker is a deleted
    server (every DELETED server of a changes-since listing, or a server
    deleted between two pages). Then we re-read from the last server that is
    still a valid marker, with a larger page, skipping what was yielded since.
    The ids of the last two pages are kept to make that possible.
    """
    recent: deque[tuple[str, bool]] = deque(maxlen=2 * PAGE_SIZE)  # (id, usable as marker)
    marker: str | None = None
    skip: set[str] = set()
    failed: set[str] = set()
    yielded = stalls = 0
    while True:
        query = {**params, "limit": PAGE_SIZE + len(skip), **({"marker": marker} if marker else {})}
        response = api.response("compute", "/servers/detail", query, what)
        if marker and _is_marker_not_found(response):
            failed.add(marker)
            stalls += 1
            if stalls > MARKER_RETRIES:
                raise DriverError(f"{what} failed: Nova keeps answering 'marker not found'")
            log.info("%s: Nova lost marker %s; re-reading from an earlier server", what, marker)
            marker, skip = _fallback_marker(recent, failed, yielded, what)
            continue
        body = api.json(response, what)
        items = items_of(body, "servers", what)
        fresh = []
        for server in items:
            sid = str(server.get("id") or "")
            if sid in skip:
                continue
            fresh.append(server)
            recent.append((sid, str(server.get("status")).upper() != "DELETED"))
        if fresh:
            skip, stalls = set(), 0
            yielded += len(fresh)
            yield fresh
        if not items or not has_next(body, "servers_links"):
            return
        marker = str(items[-1].get("id") or "")
        if not marker:
            raise DriverError(f"{what} failed: a server without id ends the page")


def _fallback_marker(
    recent: deque[tuple[str, bool]], failed: set[str], yielded: int, what: str
) -> tuple[str | None, set[str]]:
    entries = list(recent)
    for index in range(len(entries) - 1, -1, -1):
        sid, usable = entries[index]
        if usable and sid not in failed:
            return sid, {i for i, _ in entries[index + 1 :]}
    if yielded <= len(entries):  # everything so far is in the window: start over
        return None, {i for i, _ in entries}
    raise DriverError(f"{what} failed: 'marker not found' and no earlier server to resume from")
