"""``GET /metrics``: the Prometheus text exposition of ``sync.metrics``.

No database query at scrape time: counters and histograms come from the
processes' multiprocess files (``PROMETHEUS_MULTIPROC_DIR``) or this
process's registry, and the queue depth from two ``LLEN`` in Redis, read
as the scrape happens (``QueueCollector``), with the age of the oldest
webhook body waiting in the events queue (one ``LINDEX``: the list's far
end, the next to be taken, whatever the queue's length).

Access: a request bearing ``Authorization: Bearer <CLOUDSYNC_METRICS_TOKEN>``
(when that setting is not empty), or one from an address inside
``CLOUDSYNC_METRICS_ALLOWED_NETWORKS`` (default loopback only). Otherwise
401 when a token is configured (send it) and 403 when none is (the address
is not allowed). The address is the connection's (``REMOTE_ADDR``); behind
a reverse proxy, allow the proxy's address or use the token.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sync import metrics, names, queueing

__all__ = ["QueueCollector", "metrics_endpoint"]

log = logging.getLogger(__name__)

QUEUES = (names.EVENTS_QUEUE, names.SYNC_QUEUE)
UNACKED = "unacked"  # kombu's Redis transport: messages delivered, not yet acknowledged


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def received_at(message: bytes | None) -> float | None:
    """When the endpoint received a queued ingest message (Unix time), from
    the ``received_at`` it queued with the body (``sync.queueing``); None for
    other messages (replays, retries) or when unreadable."""
    if not message:
        return None
    try:
        envelope = json.loads(message)
        body = base64.b64decode(envelope["body"]) if envelope.get("properties", {}).get(
            "body_encoding") == "base64" else envelope["body"]
        kwargs = json.loads(body)[1]
        when = datetime.fromisoformat(kwargs["received_at"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


class QueueCollector(Collector):
    """Queue depth read from Redis at scrape time (the same in every process,
    so multiprocess mode has nothing to add up), and how long the next
    webhook body to be taken has waited: it grows while no worker takes
    messages (workers down), which no figure counted by workers can show."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "cloudsync_queue_length", "Messages waiting in the queue (Redis list length) now.",
            labels=["queue"])
        unacked = GaugeMetricFamily(
            "cloudsync_queue_unacked_messages",
            "Messages handed to workers and not acknowledged yet (all queues), now.")
        up = GaugeMetricFamily("cloudsync_broker_up", "1 if the broker (Redis) answered this scrape.")
        oldest = GaugeMetricFamily(
            "cloudsync_queue_oldest_age_seconds",
            "Seconds the oldest webhook body waiting in the queue has waited since the endpoint "
            "received it, now (0 when the queue is empty; absent when that message is not a "
            "webhook body: a replay or retry).",
            labels=["queue"])
        try:
            pipe = _client(queueing.broker_url()).pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            pipe.hlen(UNACKED)
            pipe.lindex(names.EVENTS_QUEUE, -1)  # LPUSH in, BRPOP out: the next one taken
            *lengths, held, first = pipe.execute()
        except (redis.RedisError, OSError, ValueError) as exc:
            log.warning("/metrics: broker not readable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        for queue, length in zip(QUEUES, lengths, strict=True):
            depth.add_metric([queue], length)
        unacked.add_metric([], held)
        up.add_metric([], 1)
        if first is None:
            oldest.add_metric([names.EVENTS_QUEUE], 0)
        else:
            since = received_at(first)
            if since is not None:
                oldest.add_metric([names.EVENTS_QUEUE], max(time.time() - since, 0.0))
        yield from (depth, unacked, oldest, up)


_queues = CollectorRegistry(auto_describe=False)
_queues.register(QueueCollector())


def _exposition() -> bytes:
    path = metrics.multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry) + generate_latest(_queues)
    return generate_latest(REGISTRY) + generate_latest(_queues)


@lru_cache(maxsize=16)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _networks(tuple(settings.CLOUDSYNC_METRICS_ALLOWED_NETWORKS)))


def _refused(request: HttpRequest) -> JsonResponse | None:
    token = settings.CLOUDSYNC_METRICS_TOKEN
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                    token.encode()):
        return None
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    if token:
        response = JsonResponse({"error": "missing or invalid metrics token", "status": 401},
                                status=401)
        response["WWW-Authenticate"] = 'Bearer realm="cloudsync-metrics"'
        return response
    return JsonResponse(
        {"error": "this address may not read the metrics (CLOUDSYNC_METRICS_ALLOWED_NETWORKS, "
                  "or set CLOUDSYNC_METRICS_TOKEN)", "status": 403}, status=403)


@require_GET
def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    refused = _refused(request)
    if refused is not None:
        return refused
    return HttpResponse(_exposition(), content_type=CONTENT_TYPE_LATEST)
