"""``cloudsync-relay``: run the relay, or ``--check`` its settings."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudsync_relay.config import Settings

__all__ = ["main"]

log = logging.getLogger("cloudsync_relay")


def _quiet_imports() -> None:
    # oslo.messaging imports oslo.service, whose eventlet backend warns on import;
    # the relay uses the threading executor only.
    warnings.filterwarnings("ignore", message=".*[Ee]ventlet is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="eventlet.*")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudsync-relay",
        description="Relay OpenStack notifications from the message bus to a cloudsync "
        "provider endpoint. Settings: CLOUDSYNC_RELAY_* environment variables and/or an "
        "oslo.config file ([relay] section).",
    )
    parser.add_argument(
        "--config-file", metavar="PATH", help="oslo.config file (also CLOUDSYNC_RELAY_CONFIG_FILE)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the bus connection and the endpoint credentials, then exit "
        "(0: both fine, 1: a problem); consumes, publishes and queues nothing",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_imports()
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.log_level != "DEBUG":
        logging.getLogger("oslo.messaging").setLevel(logging.WARNING)
        logging.getLogger("oslo_messaging").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.WARNING)

    from cloudsync_relay.config import ConfigError, load

    try:
        settings = load(args.config_file)
    except ConfigError as exc:
        print(f"cloudsync-relay: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        from cloudsync_relay.check import check

        ok, lines = check(settings)
        for line in lines:
            print(line)
        print("OK" if ok else "FAILED")
        return 0 if ok else 1
    return run(settings)


def run(settings: Settings) -> int:
    from cloudsync_relay.health import Counters, HealthLogger

    counters = Counters()
    exporter = None
    if settings.metrics_port is not None:  # before touching the bus
        from cloudsync_relay.metrics import MetricsUnavailable, start_exporter

        try:
            exporter = start_exporter(settings, counters)
        except MetricsUnavailable as exc:
            print(f"cloudsync-relay: {exc}", file=sys.stderr)
            return 2
        log.info(
            "Prometheus metrics on http://%s:%d/metrics",
            settings.metrics_address,
            settings.metrics_port,
        )

    from cloudsync_relay.listener import Relay, build_listener, count_driver_drops

    relay = Relay(settings, counters=counters)
    count_driver_drops(relay.counters)
    transport, server = build_listener(settings, relay)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping (in-flight batches finish or are requeued)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    health = HealthLogger(relay.counters, settings.health_interval)
    log.info(
        "relaying %s on exchanges %s (pool %s, priorities %s) to %s; batches of up to %d, "
        "%d POSTs in flight",
        ",".join(settings.topics), ",".join(settings.exchanges), settings.pool,
        ",".join(settings.priorities), settings.url, settings.batch_size, settings.concurrency,
    )  # fmt: skip
    server.start(override_pool_size=settings.concurrency)
    health.start()
    try:
        stop.wait()
    finally:
        relay.stopping.set()  # a batch in backoff is requeued now
        server.stop()
        server.wait()
        health.stop()
        _, total = relay.counters.take_window()
        log.info(
            "stopped; since start relayed %d, dropped %d, requeued %d",
            total.relayed,
            total.dropped,
            total.requeued,
        )
        transport.cleanup()
        relay.delivery.close()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
    return 0
