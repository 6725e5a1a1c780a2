"""Published JSON Schemas of the document formats cloudsync accepts.

Producers that speak the ``generic`` driver's format validate their documents
against the very file the worker validates with, so the two can never drift
apart. The schema holds nothing secret (no provider data), so it is served
without authentication, with a validator ETag for cheap re-fetches.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_safe

from sync.drivers.generic import load_schema

__all__ = ["generic_schema"]

SCHEMA_CONTENT_TYPE = "application/schema+json"


@cache
def _rendered() -> tuple[bytes, str]:
    body = json.dumps(load_schema(), indent=2).encode() + b"\n"
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@require_safe
def generic_schema(request: HttpRequest) -> HttpResponse:
    """GET/HEAD the generic driver's document schema (JSON Schema 2020-12)."""
    body, etag = _rendered()
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type=SCHEMA_CONTENT_TYPE)
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=3600"
    response["Access-Control-Allow-Origin"] = "*"  # editors and web tools fetch it cross-origin
    return response
