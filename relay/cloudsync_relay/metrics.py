"""The relay's Prometheus metrics (optional): served when ``metrics_port`` is
set, with prometheus_client's ``start_http_server``, from a registry of the
relay's own. prometheus_client is the package's ``metrics`` extra
(``pip install 'cloudsync-relay[metrics]'``); nothing imports this module
when the port is unset, so the relay runs without the library.

* ``cloudsync_relay_relayed_total``: notifications answered 202;
* ``cloudsync_relay_dropped_total{reason}``: acknowledged without a 202,
  ``reason`` one of ``malformed``, ``undecodable``, ``refused``,
  ``retries_exhausted`` (see ``health``);
* ``cloudsync_relay_requeued_total``: given back to the bus for a retry;
* ``cloudsync_relay_posts_total{status}``: POSTs by answer class, ``2xx``,
  ``4xx``, ``5xx`` (``1xx``/``3xx`` if ever) or ``error`` (no HTTP answer:
  network error, timeout);
* ``cloudsync_relay_post_duration_seconds``: a histogram of POST durations;
* the ``process_*`` metrics of the relay's process.
"""

from __future__ import annotations

from typing import Any

from cloudsync_relay.config import Settings
from cloudsync_relay.health import DROP_REASONS, Counters

__all__ = ["MetricsUnavailable", "PrometheusSink", "start_exporter", "status_class"]

POST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsUnavailable(Exception):
    """The metrics port is set but cannot be served."""


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class PrometheusSink:
    """Receives the relay's counts (``Counters.sinks``) into a registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.relayed = Counter(
            "cloudsync_relay_relayed", "Notifications the endpoint accepted (202)",
            registry=registry,
        )  # fmt: skip
        self.dropped = Counter(
            "cloudsync_relay_dropped",
            "Notifications acknowledged on the bus without a 202, by reason",
            ["reason"],
            registry=registry,
        )
        self.requeued = Counter(
            "cloudsync_relay_requeued", "Notifications given back to the bus to be retried",
            registry=registry,
        )  # fmt: skip
        self.posts = Counter(
            "cloudsync_relay_posts",
            "POSTs to the endpoint by answer class (error: no HTTP answer)",
            ["status"],
            registry=registry,
        )
        self.post_duration = Histogram(
            "cloudsync_relay_post_duration_seconds", "Duration of a POST to the endpoint",
            buckets=POST_BUCKETS, registry=registry,
        )  # fmt: skip
        for reason in DROP_REASONS:  # present (at 0) from the start
            self.dropped.labels(reason)
        for status in ("2xx", "4xx", "5xx", "error"):
            self.posts.labels(status)

    def add(self, relayed: int, dropped: dict[str, int], requeued: int) -> None:
        if relayed:
            self.relayed.inc(relayed)
        for reason, n in dropped.items():
            self.dropped.labels(reason).inc(n)
        if requeued:
            self.requeued.inc(requeued)

    def post(self, status: int | None, seconds: float) -> None:
        self.posts.labels(status_class(status)).inc()
        self.post_duration.observe(seconds)


def start_exporter(settings: Settings, counters: Counters) -> Any:
    """Serve the metrics on ``metrics_address:metrics_port``; attach the sink
    to ``counters``. Returns the HTTP server (``shutdown()`` stops it), or
    None with prometheus_client releases that do not return it."""
    where = f"{settings.metrics_address}:{settings.metrics_port}"
    try:
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    except ImportError as exc:
        raise MetricsUnavailable(
            f"CLOUDSYNC_RELAY_METRICS_PORT (metrics_port) is set to {settings.metrics_port} "
            "but prometheus_client is not installed: install the relay with its metrics "
            "extra, pip install 'cloudsync-relay[metrics]' (from a checkout: "
            "pip install './relay[metrics]'), or unset the port"
        ) from exc
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    sink = PrometheusSink(registry)
    try:
        started = start_http_server(
            settings.metrics_port, addr=settings.metrics_address, registry=registry
        )
    except OSError as exc:
        raise MetricsUnavailable(f"cannot serve metrics on {where}: {exc}") from exc
    counters.sinks.append(sink)
    return started[0] if isinstance(started, tuple) else None
