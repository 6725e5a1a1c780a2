"""cloudsync-relay end to end: a real ``oslo_messaging.Notifier`` publishes on
RabbitMQ, the relay (``python -m cloudsync_relay``, a separate process, from
``relay/`` only) POSTs to the real endpoint (``project.wsgi`` served on a
port of its own), a real Celery worker applies, the inventory is checked.

* Nova versioned and legacy, Glance and Neutron notifications (upstream
  samples) on their usual topics and exchanges end in the inventory; the
  request contexts' secrets never reach cloudsync;
* the endpoint down (connection refused), then answering 503 (its broker
  unreachable), ~10 s while the Notifier keeps publishing: afterwards every
  notification is in the inbox exactly once, none lost;
* a second, independent listener pool (and the Notifier's default queue,
  what Ceilometer reads) still gets every notification;
* malformed messages on the bus are dropped with a log line and the
  notifications behind them still arrive.

Names on the broker are unique per test (``tests/rabbit.py``) and deleted
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sync.choices import EventStatusChoices as Status
from sync.models import CloudHost, CloudHostIP, CloudImage, Event
from tests.broker import broker_at
from tests.e2e.conftest import wait_for
from tests.faults.events import host_uuid, nova_stream
from tests.fixtures import load_json, load_nova_versioned
from tests.rabbit import RABBIT_URL, Bus, oslo_envelope, require_rabbit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
RELAY_DIR = ROOT / "relay"
CLIENT_CONFIG = {
    "auth_url": "http://keystone.invalid:5000/v3",
    "username": "u",
    "password": "p",
    "project_name": "admin",
}


def request_context() -> Any:
    """A request context as services pass it to their Notifier (oslo.context;
    recent oslo.messaging sends its redacted copy)."""
    from oslo_context.context import RequestContext

    return RequestContext(
        auth_token="gAAAAABsecret-keystone-token",
        user_id="4ce5c085e09a478ea4edcd667a92df78",
        project_id="c97027dd880d4c129ae7a4ba7edade05",
        roles=["member"],
    )


# -- the endpoint: project.wsgi on a port that survives a stop/start ----------


class Endpoint:
    """The service's WSGI application (the webhook fast path included) in a
    threaded server; ``stop()`` closes the port, ``start()`` opens it again."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._connections: set[Any] = set()  # kept-alive client sockets

    def start(self) -> None:
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        from project.wsgi import application

        connections = self._connections

        class Quiet(WSGIRequestHandler):
            def setup(self) -> None:
                super().setup()
                connections.add(self.connection)

            def finish(self) -> None:
                connections.discard(self.connection)
                super().finish()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadedWSGIServer(("127.0.0.1", self.port), Quiet)
        self._server.set_app(application)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Down as a dead process is: the port closed, open connections cut."""
        import socket

        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for sock in list(self._connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(5)
            self._server = None


# -- the relay, as its own process --------------------------------------------


class RelayProcess:
    def __init__(self, env: dict[str, str], log_path: Path, without: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # ``without``: modules made unimportable (as if not installed)
        blocked = "".join(f"sys.modules[{name!r}] = None; " for name in without)
        run = f"import sys; {blocked}from cloudsync_relay.cli import main; sys.exit(main())"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", run, "--log-level", "INFO"],
            env=env,
            cwd=RELAY_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def bus() -> Any:
    require_rabbit()
    bus = Bus()
    yield bus
    bus.cleanup()


@pytest.fixture
def endpoint() -> Any:
    endpoint = Endpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def start_relay(bus: Bus, endpoint: Endpoint, tmp_path: Path) -> Any:
    started: list[RelayProcess] = []

    def start(provider: Any, without: tuple[str, ...] = (), **settings: Any) -> RelayProcess:
        pool = bus.pool("cloudsync")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSYNC_RELAY_")}
        env.update(
            PYTHONPATH=str(RELAY_DIR),  # the relay package alone, not the service
            CLOUDSYNC_RELAY_URL=f"{endpoint.url}/cloud-sync/provider/{provider.pk}/",
            CLOUDSYNC_RELAY_SECRET=provider.endpoint_secret,
            CLOUDSYNC_RELAY_TRANSPORT_URL=RABBIT_URL,
            CLOUDSYNC_RELAY_TOPICS=",".join(bus.topics),
            CLOUDSYNC_RELAY_EXCHANGES=",".join(bus.exchanges),
            CLOUDSYNC_RELAY_POOL=pool,
            CLOUDSYNC_RELAY_BATCH_TIMEOUT="0.05",
            CLOUDSYNC_RELAY_BACKOFF_BASE="0.2",
            CLOUDSYNC_RELAY_BACKOFF_CAP="1",
            CLOUDSYNC_RELAY_HEALTH_INTERVAL="1",
        )
        env.update({f"CLOUDSYNC_RELAY_{k.upper()}": str(v) for k, v in settings.items()})
        relay = RelayProcess(env, tmp_path / f"relay-{len(started)}.log", without)
        started.append(relay)
        try:  # ready once its pool's queue has a consumer
            wait_for(
                lambda: (bus.queue_depth(pool) or (0, 0))[1] >= 1 or relay.proc.poll(),
                timeout=30,
                interval=0.1,
            )
        except AssertionError:
            relay.stop()
            pytest.fail(f"the relay did not start:\n{relay.log()}")
        assert relay.proc.poll() is None, relay.log()
        relay.pool = pool  # type: ignore[attr-defined]
        return relay

    yield start
    for relay in started:
        relay.stop()


def openstack_provider(provider_factory: Any) -> Any:
    return provider_factory(cloud_sync_driver="openstack.ocata", client_config=CLIENT_CONFIG)


def settle(provider: Any, n: int, relay: RelayProcess, timeout: float = 30) -> None:
    """Wait until the provider's inbox has ``n`` final events."""
    final = [Status.PROCESSED, Status.IGNORED, Status.FAILED, Status.DEAD]
    try:
        wait_for(
            lambda: Event.objects.filter(cloudprovider=provider, status__in=final).count() >= n,
            timeout=timeout,
            interval=0.2,
        )
    except AssertionError:
        have = Event.objects.filter(cloudprovider=provider).count()
        pytest.fail(f"{have} of {n} events arrived; relay log:\n{relay.log()[-4000:]}")


def health_totals(log: str) -> tuple[int, int, int] | None:
    """(relayed, dropped, requeued) since start, from the last health line."""
    lines = re.findall(r"since start relayed (\d+), dropped (\d+), requeued (\d+)", log)
    return tuple(int(n) for n in lines[-1]) if lines else None  # type: ignore[return-value]


# -- 1. the four producers' samples end in the inventory ----------------------


def test_nova_glance_neutron_notifications_reach_the_inventory(
    bus, start_relay, provider_factory, celery_worker
):
    provider = openstack_provider(provider_factory)
    relay = start_relay(provider)

    versioned = load_nova_versioned("instance-create-end.json")
    legacy = load_json("nova-legacy/designate/compute.instance.create.end.json")
    image = load_json("glance/searchlight/images.json")["image.create"]
    port = load_json("neutron/designate/port.create.end.json")

    # As each service publishes: Nova versioned on versioned_notifications,
    # everything else on notifications, each to its own control exchange.
    bus.notifier("nova", versioned["publisher_id"], "versioned_notifications").info(
        request_context(), versioned["event_type"], versioned["payload"]
    )
    bus.notifier("glance", image["publisher_id"], "notifications").info(
        request_context(), image["event_type"], image["payload"]
    )
    bus.notifier("neutron", port["publisher_id"], "notifications").info(
        request_context(), port["event_type"], port["payload"]
    )
    # Legacy Nova as an older oslo.messaging put it on the bus: the whole
    # request context in _context_* keys, Keystone token and catalog included.
    assert legacy["_context_auth_token"] and legacy["_context_service_catalog"]
    bus.publish_raw("nova", "notifications", oslo_envelope(legacy))

    settle(provider, 4, relay)
    events = Event.objects.filter(cloudprovider=provider)
    assert sorted(events.values_list("event_type", "status")) == [
        ("compute.instance.create.end", Status.PROCESSED),
        ("image.create", Status.PROCESSED),
        ("instance.create.end", Status.PROCESSED),
        ("port.create.end", Status.PROCESSED),
    ], list(events.values_list("event_type", "status", "error"))

    hosts = {h.hostname: h for h in CloudHost.objects.filter(cloudprovider=provider)}
    assert hosts["some-server"].status == "active"  # the versioned sample
    assert hosts["some-server"].hypervisor == "compute"
    assert hosts["TestInstance"].status == "active"  # the legacy sample
    assert hosts["TestInstance"].hypervisor == "stack01"
    assert CloudHostIP.objects.filter(host=hosts["some-server"], address="192.168.1.3").exists()
    img = CloudImage.objects.get(cloudprovider=provider, image_id=image["payload"]["id"])
    assert img.name == "cirros-0.3.4-x86_64-uec-kernel"
    assert CloudHostIP.objects.filter(
        port__cloudprovider=provider,
        port__port_id=port["payload"]["port"]["id"],
        address="172.16.59.10",
    ).exists()

    # The contexts arrived without secrets; what the driver reads stayed.
    for event in events:
        text = str(event.body)
        assert "auth_token" not in text and "service_catalog" not in text, text
        assert "gAAAAABsecret" not in text and legacy["_context_auth_token"] not in text
        assert event.body["metadata"]["message_id"] == event.key
    ctxt = events.get(event_type="compute.instance.create.end").body["ctxt"]
    assert ctxt["project_name"] == legacy["_context_project_name"]
    assert ctxt["user_name"] == legacy["_context_user_name"]
    ctxt = events.get(event_type="instance.create.end").body["ctxt"]
    assert ctxt["project_id"] == "c97027dd880d4c129ae7a4ba7edade05"

    wait_for(lambda: health_totals(relay.log()) == (4, 0, 0), timeout=5)


# -- 2. endpoint outage while the Notifier keeps publishing -------------------


@pytest.mark.timeout(120)
def test_endpoint_outage_loses_nothing(bus, endpoint, start_relay, provider_factory, celery_worker):
    provider = openstack_provider(provider_factory)
    relay = start_relay(provider, batch_size=10)
    notifier = bus.notifier("nova", "nova-compute:compute", "versioned_notifications")
    # instance.create.end of 90 distinct hosts (upstream sample, ids rewritten)
    stream = nova_stream(90, 90, bus.tag)  # one host each: its instance.create.end

    def publish(messages: list[Any], seconds: float = 0.0) -> None:
        for m in messages:
            notifier.info(request_context(), m.message["event_type"], m.message["payload"])
            if seconds:
                time.sleep(seconds / len(messages))

    publish(stream[:30])
    settle(provider, 30, relay)

    endpoint.stop()  # connection refused for ~5 s
    publish(stream[30:50], seconds=5)
    endpoint.start()
    with broker_at("redis://127.0.0.1:1/0"):  # the endpoint answers 503 for ~5 s
        publish(stream[50:70], seconds=5)
        assert Event.objects.filter(cloudprovider=provider).count() == 30
    publish(stream[70:])

    settle(provider, 90, relay, timeout=60)
    events = Event.objects.filter(cloudprovider=provider)
    assert events.count() == 90  # each notification exactly once
    assert set(events.values_list("status", flat=True)) == {Status.PROCESSED}
    expected = {host_uuid(bus.tag, m.host) for m in stream}
    assert (
        set(CloudHost.objects.filter(cloudprovider=provider).values_list("host_id", flat=True))
        == expected
    )

    log = relay.log()
    assert "requeued" in log and "network error: connection refused" in log, log[-3000:]
    assert "HTTP 503" in log, log[-3000:]
    totals = wait_for(lambda: (t := health_totals(relay.log())) and t[0] >= 90 and t, timeout=5)
    relayed, dropped, requeued = totals
    assert dropped == 0 and requeued > 0
    relay.stop()
    assert bus.queue_depth(relay.pool) == (0, 0)  # nothing left behind


# -- 3. the relay steals nothing from other consumers -------------------------


class Collector:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):  # noqa: ANN001
        with self.lock:
            self.ids.append(metadata["message_id"])


def test_other_listener_pools_still_get_every_notification(
    bus, start_relay, provider_factory, celery_worker
):
    provider = openstack_provider(provider_factory)
    relay = start_relay(provider)
    other = Collector()
    listener = bus.listener([other], pool=bus.pool("ceilometer-like"))
    listener.start()
    try:
        notifier = bus.notifier("nova", "nova-compute:compute", "versioned_notifications")
        wait_for(lambda: bus.queue_depth(bus.pools[-1]) is not None, timeout=10)
        stream = nova_stream(40, 40, bus.tag)
        for m in stream:
            notifier.info(request_context(), m.message["event_type"], m.message["payload"])
        settle(provider, 40, relay)
        wait_for(lambda: len(other.ids) >= 40, timeout=15)
    finally:
        listener.stop()
        listener.wait()
    keys = set(Event.objects.filter(cloudprovider=provider).values_list("key", flat=True))
    assert len(keys) == 40
    assert sorted(other.ids) == sorted(keys)  # the same 40 notifications, each once
    # ...and the Notifier's own queue, which pool-less consumers read, kept all 40.
    assert bus.queue_depth(f"{bus.topic('versioned_notifications')}.info") == (40, 0)


# -- 4. malformed messages are dropped, never block the queue -----------------


def test_malformed_messages_are_dropped_and_do_not_block(
    bus, start_relay, provider_factory, celery_worker
):
    provider = openstack_provider(provider_factory)
    # ...with no prometheus_client (the metrics extra): not needed without METRICS_PORT
    relay = start_relay(provider, without=("prometheus_client",), batch_size=5)
    notifier = bus.notifier("nova", "nova-compute:compute", "versioned_notifications")
    stream = nova_stream(10, 10, bus.tag)
    topic = "versioned_notifications"

    def good(messages: list[Any]) -> None:
        for m in messages:
            notifier.info(request_context(), m.message["event_type"], m.message["payload"])

    good(stream[:3])
    bus.publish_raw("nova", topic, b"\x00\xffnot json at all", content_type="application/data")
    bus.publish_raw("nova", topic, b'{"oslo.version": "2.0", "oslo.message": "{broken"}')
    bus.publish_raw("nova", topic, oslo_envelope({"priority": "INFO", "payload": {"x": 1}}))
    bus.publish_raw(
        "nova", topic, oslo_envelope({"event_type": "instance.update", "priority": "INFO"})
    )
    bus.publish_raw("nova", topic, b'["a", "list"]')
    good(stream[3:])

    settle(provider, 10, relay)
    assert Event.objects.filter(cloudprovider=provider).count() == 10
    log = relay.log()
    assert log.count("dropped an undecodable message from the bus") == 3, log
    assert "dropped a malformed message from the bus: no event_type" in log, log
    assert "dropped a malformed message from the bus: instance.update: no payload" in log, log
    wait_for(lambda: health_totals(relay.log()) == (10, 5, 0), timeout=5)
    relay.stop()
    assert bus.queue_depth(relay.pool) == (0, 0)


# -- 5. the Prometheus exporter (METRICS_PORT, the metrics extra) ---------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, labels): value} of the relay's /metrics."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def relay_counts(samples: dict) -> dict[str, float]:
    def one(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    counts = {
        "relayed": one("cloudsync_relay_relayed_total"),
        "requeued": one("cloudsync_relay_requeued_total"),
        "post_durations": one("cloudsync_relay_post_duration_seconds_count"),
    }
    for reason in ("malformed", "undecodable", "refused", "retries_exhausted"):
        counts[f"dropped {reason}"] = one("cloudsync_relay_dropped_total", reason=reason)
    for status in ("2xx", "4xx", "5xx", "error"):
        counts[f"posts {status}"] = one("cloudsync_relay_posts_total", status=status)
    return counts


def test_prometheus_metrics_count_what_the_relay_did(
    bus, start_relay, provider_factory, celery_worker
):
    provider = openstack_provider(provider_factory)
    port = free_port()
    relay = start_relay(provider, batch_size=1, metrics_port=port)  # one POST each
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in relay.log()
    zero = relay_counts(scrape(port))
    assert set(zero.values()) == {0}, zero

    notifier = bus.notifier("nova", "nova-compute:compute", "versioned_notifications")
    stream = nova_stream(6, 6, bus.tag)
    topic = "versioned_notifications"
    for m in stream[:3]:
        notifier.info(request_context(), m.message["event_type"], m.message["payload"])
    bus.publish_raw("nova", topic, b'{"oslo.version": "2.0", "oslo.message": "{broken"}')
    bus.publish_raw("nova", topic, oslo_envelope({"priority": "INFO", "payload": {"x": 1}}))
    for m in stream[3:]:
        notifier.info(request_context(), m.message["event_type"], m.message["payload"])
    settle(provider, 6, relay)

    wait_for(lambda: relay_counts(scrape(port))["dropped malformed"] == 1, timeout=10)
    assert relay_counts(scrape(port)) == {
        "relayed": 6, "requeued": 0, "post_durations": 6,
        "dropped malformed": 1, "dropped undecodable": 1, "dropped refused": 0,
        "dropped retries_exhausted": 0,
        "posts 2xx": 6, "posts 4xx": 0, "posts 5xx": 0, "posts error": 0,
    }  # fmt: skip
    samples = scrape(port)
    assert ("process_resident_memory_bytes", ()) in samples
    assert relay.stop() == 0


# -- 6. a notification the endpoint side always refuses (retryably) ---------------


@pytest.mark.timeout(180)
def test_a_notification_failing_alone_is_given_up_and_blocks_nothing(
    bus, endpoint, start_relay, provider_factory, celery_worker
):
    """A WAF in front of cloudsync answers 403 for one notification (any
    batch holding it too). The batches are halved until it is alone, its
    neighbours are delivered; it is retried alone, and once it has failed
    MAX_ATTEMPTS times while others were accepted it is dropped with an
    ERROR line. Every other notification arrives; the queue ends empty."""
    from tests.relay.waf import waf_in_front_of

    waf = waf_in_front_of(endpoint.url)
    provider = openstack_provider(provider_factory)
    port = free_port()
    relay = start_relay(
        provider, batch_size=5, max_attempts=3, metrics_port=port,
        url=f"{waf.url}/cloud-sync/provider/{provider.pk}/",
    )  # fmt: skip
    notifier = bus.notifier("nova", "nova-compute:compute", "versioned_notifications")
    stream = nova_stream(40, 40, bus.tag)

    def publish(m: Any) -> None:
        notifier.info(request_context(), m.message["event_type"], m.message["payload"])

    try:
        for m in stream[:3]:
            publish(m)
        notifier.info(request_context(), "compute.instance.exists", {"note": "poison"})
        for m in stream[3:8]:
            publish(m)
        # traffic goes on: a notification every 0.2 s until the culprit is given up
        sent = 8
        deadline = time.monotonic() + 60
        while "given up" not in relay.log() and time.monotonic() < deadline and sent < 40:
            publish(stream[sent])
            sent += 1
            time.sleep(0.2)
        settle(provider, sent, relay)
    finally:
        waf.close()
    log = relay.log()
    [line] = [line for line in log.splitlines() if "given up" in line]
    assert " ERROR " in line and "event_type='compute.instance.exists'" in line, line
    assert "3 times alone" in line and "HTTP 403: <html>Request blocked by WAF</html>" in line
    assert Event.objects.filter(cloudprovider=provider).count() == sent
    counts = relay_counts(scrape(port))
    assert counts["relayed"] == sent
    assert counts["dropped retries_exhausted"] == 1
    assert counts["dropped refused"] == counts["dropped malformed"] == 0
    assert counts["requeued"] >= 3 and counts["posts 4xx"] >= 4  # 403s: batches, then alone
    relay.stop()
    assert bus.queue_depth(relay.pool) == (0, 0)
