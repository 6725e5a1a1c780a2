"""``cloudsync-relay --check``: can the relay reach the bus and is it allowed
to post to the endpoint? Nothing is consumed, published or queued.

* bus: connects with the transport URL (and the file's
  ``[oslo_messaging_rabbit]`` TLS settings), then looks the pool's queue up
  passively (how many notifications wait in it, if it exists yet);
* endpoint: POSTs an empty JSON array with the credentials. cloudsync checks
  the provider, the credentials, that cloud sync is enabled and the driver
  installed before it looks at the body, and queues nothing for an empty
  array: its 400 "empty JSON array" means everything else is in order.
"""

from __future__ import annotations

import ssl
from urllib.parse import quote

from cloudsync_relay.config import Settings
from cloudsync_relay.delivery import Delivery

__all__ = ["check", "check_bus", "check_endpoint"]

EMPTY_ARRAY = "empty JSON array"
ENDPOINT_PROBLEMS = {
    401: "the endpoint refused the credentials (401): check the secret "
    "(CLOUDSYNC_RELAY_SECRET; it changes when the provider's secret is rotated)",
    404: "the endpoint knows no such provider (404): check the provider id in the URL",
    409: "the provider has cloud sync disabled (409): enable it in cloudsync",
    501: "the provider's driver is not installed on the cloudsync server (501)",
}


def _safe_url(url: str | None) -> str:
    """The transport URL without its password."""
    if not url:
        return "(the config file's transport_url)"
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{hostpart}"


def check_bus(settings: Settings) -> tuple[bool, str]:
    import kombu
    import oslo_messaging

    conf = settings.conf
    raw = settings.transport_url
    if not raw and "oslo_messaging_notifications" in conf:
        raw = conf.oslo_messaging_notifications.transport_url  # as the listener reads it
    try:
        url = oslo_messaging.TransportURL.parse(conf, raw)
    except Exception as exc:
        return False, f"bus: invalid transport URL {_safe_url(raw)}: {exc}"
    if url.transport not in ("rabbit", "kombu", "amqp") and url.transport is not None:
        return False, f"bus: --check knows RabbitMQ only, not {url.transport}://"
    hosts = url.hosts or [oslo_messaging.TransportHost(hostname="localhost", port=5672)]
    rabbit = conf.oslo_messaging_rabbit if "oslo_messaging_rabbit" in conf else None
    use_ssl: bool | dict = False
    if rabbit is not None and rabbit.ssl:
        use_ssl = {"cert_reqs": ssl.CERT_REQUIRED}
        if rabbit.ssl_ca_file:
            use_ssl["ca_certs"] = rabbit.ssl_ca_file
        if rabbit.ssl_cert_file:
            use_ssl["certfile"] = rabbit.ssl_cert_file
        if rabbit.ssl_key_file:
            use_ssl["keyfile"] = rabbit.ssl_key_file
    errors = []
    for host in hosts:
        where = f"{host.hostname}:{host.port or 5672}"
        connection = kombu.Connection(
            hostname=host.hostname or "localhost",
            port=host.port or 5672,
            userid=host.username or "guest",
            password=host.password or "guest",
            virtual_host=url.virtual_host or "/",
            ssl=use_ssl,
            connect_timeout=5,
        )
        try:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
        except Exception as exc:
            errors.append(f"{where}: {exc}")
            connection.release()
            continue
        try:
            channel = connection.channel()
            try:
                _, waiting, consumers = channel.queue_declare(queue=settings.pool, passive=True)
                queue = (
                    f'queue "{settings.pool}": {waiting} notification(s) waiting, '
                    f"{consumers} consumer(s)"
                )
            except Exception:  # NotFound (it closes the channel)
                queue = f'queue "{settings.pool}": not declared yet (the relay declares it)'
        finally:
            connection.release()
        vhost = quote(url.virtual_host or "", safe="")
        return True, f"bus: rabbit://{host.username}@{where}/{vhost} answers; {queue}"
    return False, "bus: cannot connect: " + "; ".join(errors)


def check_endpoint(settings: Settings, delivery: Delivery | None = None) -> tuple[bool, str]:
    delivery = delivery or Delivery(
        settings.url, settings.secret, timeout=settings.timeout, verify=settings.verify
    )
    try:
        answer = delivery.post(b"[]")
    finally:
        delivery.close()
    if answer.status == 400 and EMPTY_ARRAY in answer.reason:
        return True, f"endpoint: {settings.url} accepts the credentials (nothing was queued)"
    if answer.status is None:
        return False, f"endpoint: {settings.url} cannot be reached: {answer.reason}"
    if answer.status == 503:
        return False, (
            f"endpoint: {settings.url}: the service is temporarily unavailable (503: "
            f"{answer.reason}); the relay would hold notifications on the bus until it answers"
        )
    if answer.status in ENDPOINT_PROBLEMS:
        return False, f"endpoint: {settings.url}: {ENDPOINT_PROBLEMS[answer.status]}"
    return False, (
        f"endpoint: {settings.url} answered HTTP {answer.status} ({answer.reason}): "
        "not a cloudsync provider endpoint?"
    )


def check(settings: Settings) -> tuple[bool, list[str]]:
    results = [check_bus(settings), check_endpoint(settings)]
    return all(ok for ok, _ in results), [line for _, line in results]
