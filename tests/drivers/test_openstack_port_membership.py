"""Port membership from the real OpenStack translations of upstream samples
(issue 10): a Nova ``create.end`` listing port P, an ``update`` a minute
later listing none, a ``power_off.end`` two minutes later listing P again;
Neutron port and floating IP events interleaved. The host must end in the
state of the newest statements in every arrival order, with duplicates."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest

from sync.apply import apply
from sync.changes import Kind
from sync.models import CloudHost, CloudHostIP, CloudPort, CloudProvider
from tests.drivers import changes
from tests.fixtures import load_json, load_nova_versioned, with_wire_fields

pytestmark = pytest.mark.django_db

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"  # InstancePayload.json
PORT = "ce531f90-199f-48c0-816c-13e38010b442"  # IpPayload.json
FIP = "1a124625-4c71-4d20-a65b-3cf34465dab2"  # neutron/searchlight/floatingips.json
T0 = datetime(2012, 10, 29, 13, 42, 11, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def nova(sample: str, seconds: int) -> dict[str, Any]:
    """A versioned Nova sample as sent ``seconds`` after T0 (its instance
    ``updated_at`` and the message time)."""
    when = _at(seconds)
    message = with_wire_fields(
        load_nova_versioned(sample),
        message_id=f"{sample}-{seconds}",
        timestamp=when.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    message["payload"]["nova_object.data"]["updated_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return message


def _neutron(message: dict[str, Any], seconds: int) -> dict[str, Any]:
    message = copy.deepcopy(message)
    when = _at(seconds)
    message["metadata"] = {
        "message_id": f"{message['event_type']}-{seconds}",
        "timestamp": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    return message


def neutron_port(step: str, seconds: int) -> dict[str, Any]:
    """A Neutron port sample (searchlight ports.json) about P on our server."""
    message = _neutron(load_json("neutron/searchlight/ports.json")[step], seconds)
    port = message["payload"]["port"]
    port["id"] = PORT
    if port.get("device_id"):
        port["device_id"] = UUID
    port["updated_at"] = _at(seconds).strftime("%Y-%m-%dT%H:%M:%S")
    return message


def floating_ip(step: str, seconds: int) -> dict[str, Any]:
    """A floating IP sample (searchlight floatingips.json) bound to P."""
    message = _neutron(load_json("neutron/searchlight/floatingips.json")[step], seconds)
    fip = message["payload"]["floatingip"]
    if fip.get("port_id"):
        fip["port_id"] = PORT
    fip["updated_at"] = _at(seconds).strftime("%Y-%m-%dT%H:%M:%S")
    return message


NOVA = [
    nova("instance-create-end.json", 0),  # lists P (192.168.1.3)
    nova("instance-update.json", 60),  # lists no IP
    nova("instance-power_off-end.json", 120),  # lists P again
]


def host_view(provider: CloudProvider) -> tuple:
    """(host status, its addresses with their kind and port, P's host, the floating IP's host)."""
    host = CloudHost.all_objects.get(cloudprovider=provider, host_id=UUID)
    ips = sorted(
        CloudHostIP.objects.filter(host=host).values_list("address", "kind", "port__port_id")
    )
    ports = {
        p.port_id: p.host.host_id if p.host else None
        for p in CloudPort.objects.filter(cloudprovider=provider).select_related("host")
    }
    return host.status, ips, ports.get(PORT), ports.get(f"fip:{FIP}")


def run_order(messages: list[dict[str, Any]], name: str, *, batch: bool = False) -> tuple:
    provider = CloudProvider.objects.create(name=name)
    translated = [changes(message) for message in messages]
    if batch:
        apply(provider, [c for found in translated for c in found])
    else:
        for found in translated:
            apply(provider, found)  # one event per apply, as the inbox does
    return host_view(provider)


def test_the_samples_carry_the_port_sets_the_scenario_needs():
    lists = [next(c for c in changes(m) if c.kind == Kind.HOST).fields.get("port_ids") for m in NOVA]
    assert lists == [[PORT], [], [PORT]]


def test_newest_nova_event_decides_the_ports_in_every_order():
    expected = ("stopped", [("192.168.1.3", "fixed", PORT)], UUID, None)
    assert run_order(NOVA, "nova-in-order") == expected
    for n, order in enumerate(permutations(NOVA)):
        assert run_order(list(order), f"nova-{n}") == expected, [m["event_type"] for m in order]
    rng = random.Random(10)
    for n in range(6):  # each event several times, shuffled, one by one or in one batch
        noisy = NOVA * 3
        rng.shuffle(noisy)
        assert run_order(noisy, f"nova-dup-{n}", batch=n % 2 == 1) == expected


def test_neutron_port_and_floating_ip_events_interleave_with_nova_lists():
    messages = [
        *NOVA,
        neutron_port("port_attach", 30),  # P on the server with 192.168.50.3 (older than Nova's t+120)
        floating_ip("floatingip.associate.end", 90),  # 172.25.0.20 bound to P
    ]
    expected = (
        "stopped",
        [("172.25.0.20", "floating", f"fip:{FIP}"), ("192.168.1.3", "fixed", PORT)],
        UUID,
        UUID,
    )
    assert run_order(messages, "mixed-in-order") == expected
    for n, order in enumerate(permutations(messages)):
        assert run_order(list(order), f"mixed-{n}") == expected, [m["event_type"] for m in order]


def test_a_newer_neutron_detach_wins_over_the_nova_list():
    messages = [
        *NOVA,
        neutron_port("port_attach", 30),
        floating_ip("floatingip.associate.end", 90),
        neutron_port("port_detach", 150),  # device_id cleared after the power_off
    ]
    expected = ("stopped", [], None, None)  # P and its floating IP are off the host
    assert run_order(messages, "detach-in-order") == expected
    rng = random.Random(11)
    for n in range(40):
        noisy = messages + rng.choices(messages, k=3)
        rng.shuffle(noisy)
        assert run_order(noisy, f"detach-{n}", batch=n % 4 == 0) == expected
