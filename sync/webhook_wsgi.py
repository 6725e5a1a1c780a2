"""A WSGI fast path for the webhook endpoint (see ``project/wsgi.py``).

It serves ``POST /cloud-sync/provider/<id>/`` with the very same view,
``sync.endpoint.provider_endpoint``, but calls it directly: no middleware
chain, no URL resolver, no request signals. What those would have done that
matters here is done explicitly: the Host header is checked against
ALLOWED_HOSTS; the view's only database access (the provider lookup, once
per cache period) recycles stale connections itself
(``sync.endpoint._provider``); an unexpected exception still becomes a
logged 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse, JsonResponse

from sync.endpoint import provider_endpoint

__all__ = ["with_webhook_fast_path"]

log = logging.getLogger("django.request")
_PATH = re.compile(r"/cloud-sync/provider/([0-9]+)/")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def _serve(request: WSGIRequest, provider_id: int) -> HttpResponse:
    try:
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it
    except DisallowedHost as exc:
        return JsonResponse({"error": f"bad Host header: {exc}", "status": 400}, status=400)
    try:
        return provider_endpoint(request, provider_id)
    except Exception:
        log.exception("webhook failed: %s", request.path)
        return JsonResponse({"error": "internal error", "status": 500}, status=500)


def with_webhook_fast_path(django_app: WSGIApp) -> WSGIApp:
    """Wrap Django's WSGI application: webhook POSTs skip the middleware."""

    def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return django_app(environ, start_response)
        response = _serve(WSGIRequest(environ), int(match.group(1)))
        content = response.content
        # What CommonMiddleware and SecurityMiddleware would have added.
        response["Content-Length"] = str(len(content))
        response.setdefault("X-Content-Type-Options", "nosniff")
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [content]

    return application
