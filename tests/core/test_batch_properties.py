"""Property: through the batch path, any shuffle + duplication of a stream of
real Nova notifications, cut into batches anywhere (the same host changed
several times within one batch), converges to the state of the in-order
stream applied one event at a time — hosts, ports, addresses — and nothing
deleted comes back."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.ingest import Body, ingest_bodies
from sync.models import CloudHost, CloudHostIP, CloudPort, CloudProvider
from tests.faults.events import nova_stream

pytestmark = pytest.mark.django_db

STREAM = nova_stream(24, 3, tag="prop", delete_every=2)
CONFIG = {"auth_url": "http://keystone.invalid:5000/v3", "username": "u", "password": "p",
          "project_name": "admin"}
_reference: dict[str, tuple] = {}
# Hypothesis runs every example in the test's one transaction: each shuffled
# provider needs a name of its own (id() of a list may come back).
_shuffled = itertools.count(1)


def _provider(name: str) -> CloudProvider:
    return CloudProvider.objects.create(name=name, cloud_sync_enabled=True,
                                        cloud_sync_driver="openstack.ocata", client_config=CONFIG)


def state(provider: CloudProvider) -> tuple:
    hosts = sorted(
        (h.host_id, h.hostname, h.status, h.deleted_at is None, h.hypervisor,
         h.cloudflavor.flavor_id if h.cloudflavor_id else None)
        for h in CloudHost.all_objects.filter(cloudprovider=provider).select_related("cloudflavor")
    )
    ports = sorted(
        (p.port_id, p.host.host_id if p.host_id else None, p.deleted_at is None)
        for p in CloudPort.all_objects.filter(cloudprovider=provider).select_related("host")
    )
    addresses = sorted(
        (a.address, a.host.host_id if a.host_id else None)
        for a in CloudHostIP.objects.filter(host__cloudprovider=provider).select_related("host")
    )
    return hosts, ports, addresses


def reference() -> tuple:
    if "state" not in _reference or not CloudProvider.objects.filter(name="in-order").exists():
        provider = _provider("in-order")
        for message in STREAM:
            ingest_bodies([Body(provider.pk, message.text)])
        _reference["state"] = state(provider)
    return _reference["state"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(range(len(STREAM))),
    copies=st.lists(st.integers(0, len(STREAM) - 1), max_size=10),
    cuts=st.lists(st.integers(1, len(STREAM) + 10), max_size=5),
    data=st.data(),
)
def test_any_order_duplication_and_batching_converges(order, copies, cuts, data):
    expected = reference()
    sequence = [STREAM[i] for i in order]
    for i in copies:  # duplicates land anywhere, possibly in the same batch
        sequence.insert(data.draw(st.integers(0, len(sequence))), STREAM[i])
    provider = _provider(f"shuffled-{next(_shuffled)}")
    bounds = sorted({0, len(sequence), *(c for c in cuts if c < len(sequence))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        ingest_bodies([Body(provider.pk, m.text) for m in sequence[start:end]])
    assert state(provider) == expected


def test_the_stream_exercises_deletes_ports_and_addresses():
    hosts, ports, addresses = reference()
    assert len(hosts) == 3 and any(not alive for _, _, _, alive, _, _ in hosts)
    assert ports and addresses
