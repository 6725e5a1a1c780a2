"""The webhook endpoint ``POST /cloud-sync/provider/<id>/``.

It only authenticates, checks and enqueues: no database writes, no driver
code. A 202 means the body is in Redis; when the broker cannot take it the
producer gets a 503 with Retry-After, never a 2xx (DESIGN §6).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sync import metrics, queueing
from sync.drivers.registry import is_installed
from sync.jsonsafety import too_deep
from sync.models import CloudProvider

__all__ = ["provider_endpoint", "clear_provider_cache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ProviderInfo:
    pk: int
    enabled: bool
    driver: str
    secret: bytes
    driver_installed: bool  # looked up with the row: drivers load once per process


class _Unknown(Exception):
    """The provider cannot be looked up now (database down) and is not cached."""


# provider id -> (fresh until, usable while the database is down until, info)
_cache: dict[int, tuple[float, float, _ProviderInfo | None]] = {}


def clear_provider_cache(*_args: object, **_kwargs: object) -> None:
    """Forget every cached provider (tests; a provider saved in this process)."""
    _cache.clear()


def _provider(provider_id: int) -> _ProviderInfo | None:
    """Provider lookup, cached for CLOUDSYNC_PROVIDER_CACHE_SECONDS.

    While the database is unavailable the last answer is used for up to
    CLOUDSYNC_PROVIDER_STALE_SECONDS after it was read (a provider can only be
    changed while the database is up, and every process re-reads it within
    the fresh period); a provider not cached raises _Unknown (503).
    """
    now = time.monotonic()
    hit = _cache.get(provider_id)
    if hit and hit[0] > now:
        return hit[2]
    try:
        info = _read_provider(provider_id)
    except DatabaseError as exc:
        if hit and hit[1] > now:
            # Serve the cached answer; look again in a second, not on every request.
            _cache[provider_id] = (now + 1.0, hit[1], hit[2])
            log.warning("provider %s: database unavailable, authenticating from cache: %s",
                        provider_id, _first_line(exc))
            return hit[2]
        raise _Unknown(_first_line(exc)) from exc
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[provider_id] = (
        now + settings.CLOUDSYNC_PROVIDER_CACHE_SECONDS,
        now + settings.CLOUDSYNC_PROVIDER_STALE_SECONDS,
        info,
    )
    return info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_provider(provider_id: int) -> _ProviderInfo | None:
    # The fast path sends no request signals (sync.webhook_wsgi): recycle a
    # stale or expired connection here, as Django's request_started would.
    conn = connections[CloudProvider.objects.db]
    try:
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()
        row = (
            CloudProvider.objects.filter(pk=provider_id)
            .only("cloud_sync_enabled", "cloud_sync_driver", "endpoint_secret")
            .first()
        )
    except DatabaseError:
        if not conn.in_atomic_block:
            conn.close()  # the next lookup starts from a fresh connection
        raise
    if row is None:
        return None
    return _ProviderInfo(
        row.pk,
        row.cloud_sync_enabled,
        row.cloud_sync_driver,
        row.endpoint_secret.encode(),
        is_installed(row.cloud_sync_driver),
    )


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message, "status": status}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _too_deep() -> JsonResponse:
    return _error(400, f"body is nested deeper than {settings.CLOUDSYNC_MAX_JSON_DEPTH} levels")


def _authenticated(request: HttpRequest, secret: bytes, body: bytes) -> bool:
    """Bearer, HMAC signature, Basic (password = secret) or ?token=; constant time."""
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = auth.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return hmac.compare_digest(credentials.strip().encode(), secret)
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded.partition(b":")[2], secret)
    signature = request.META.get("HTTP_X_CLOUDSYNC_SIGNATURE", "")
    if signature:
        algo, _, digest = signature.partition("=")
        if algo.strip().lower() != "sha256":
            return False
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(digest.strip().lower().encode(), expected.encode())
    token = request.GET.get("token")
    if token:
        return hmac.compare_digest(token.encode(), secret)
    return False


def _read_body(request: HttpRequest) -> bytes | None:
    """The body, or None when it exceeds the limit (read at most limit+1 bytes)."""
    limit = settings.CLOUDSYNC_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    data = request.read(limit + 1)
    return None if len(data) > limit else data


@csrf_exempt
def provider_endpoint(request: HttpRequest, provider_id: int) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "only POST is allowed", Allow="POST")
    try:
        info = _provider(provider_id)
    except _Unknown as exc:
        log.error("provider %s: database unavailable and provider not cached, answered 503: %s",
                  provider_id, exc)
        return _error(503, "service temporarily unavailable, retry later; nothing was queued",
                      Retry_After="30")
    if info is None:
        return _error(404, f"no cloud provider with id {provider_id}")
    body = _read_body(request)
    if body is None:
        return _error(413, f"body larger than {settings.CLOUDSYNC_MAX_BODY_BYTES} bytes")
    if not _authenticated(request, info.secret, body):
        return _error(
            401, "missing or invalid credentials", WWW_Authenticate='Bearer realm="cloudsync", Basic realm="cloudsync"'
        )
    if not info.enabled:
        return _error(409, "cloud sync is disabled for this provider; nothing was queued")
    if not info.driver_installed:
        return _error(501, f"driver {info.driver!r} is not installed on this server")
    # Everything above is checked before the body: an authenticated "[]" is
    # answered 400 below and queues nothing (cloudsync-relay --check uses it).
    if not body.strip():
        return _error(400, "empty body: expected a JSON object or array")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(400, f"body is not valid UTF-8 (byte {exc.start})")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    except RecursionError:
        return _too_deep()
    if too_deep(text, parsed, settings.CLOUDSYNC_MAX_JSON_DEPTH):
        return _too_deep()
    if isinstance(parsed, dict):
        count = 1
    elif isinstance(parsed, list) and parsed:
        count = len(parsed)
    elif isinstance(parsed, list):
        return _error(400, "empty JSON array: nothing to queue")
    else:
        return _error(400, "body must be a JSON object (one message) or array (a batch)")
    try:
        task_id = queueing.enqueue_ingest(info.pk, text, timezone.now())
    except queueing.BrokerUnavailable as exc:
        log.error("provider %s: broker unavailable, answered 503: %s", info.pk, exc)
        return _error(503, "queue unavailable, retry later; nothing was queued", Retry_After="30")
    metrics.count_received(info.pk, info.driver, count)
    # What JsonResponse({"queued": count, "task_id": task_id}) writes, without its encoder.
    return HttpResponse(
        b'{"queued": %d, "task_id": "%s"}' % (count, task_id.encode()),
        status=202,
        content_type="application/json",
    )
