"""Property: any shuffling, duplication and batching of a change stream
converges to the state of the in-order stream, and never resurrects a
deleted object. Hosts alone, then hosts, ports and floating IPs together
(port membership included)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.apply import apply
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudHost, CloudHostIP, CloudPort, CloudProvider

pytestmark = pytest.mark.django_db

HOSTS = ["vm-a", "vm-b", "vm-c"]
PORTS = ["p1", "p2", "p3"]
FIPS = ["fip:1", "fip:2"]
field_values = st.fixed_dictionaries(
    {},
    optional={
        "hostname": st.sampled_from(["web", "db", "cache"]),
        "status": st.sampled_from(["building", "active", "stopped", "error"]),
        "hypervisor": st.sampled_from(["cmp-1", "cmp-2"]),
        "flavor": st.sampled_from(["m1.small", "m1.large"]),
        "addresses": st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]), max_size=2),
        "metadata": st.dictionaries(st.sampled_from(["k1", "k2"]), st.sampled_from(["x", "y"]), max_size=2),
    },
)


@st.composite
def streams(draw):
    """A stream with strictly increasing versions; deletes are rare and final."""
    raw = draw(st.lists(st.tuples(st.sampled_from(HOSTS), st.integers(0, 9), field_values), min_size=1, max_size=12))
    changes = []
    for n, (ext, roll, fields) in enumerate(raw, start=1):
        op = Op.DELETE if roll == 0 else Op.UPSERT
        changes.append(Change(Kind.HOST, op, ext, {} if op == Op.DELETE else fields, make_version(n)))
    return changes


def state(provider: CloudProvider) -> dict:
    out = {}
    for row in CloudHost.all_objects.filter(cloudprovider=provider).select_related("cloudflavor"):
        ips = sorted(CloudHostIP.objects.filter(host=row).values_list("address", flat=True))
        out[row.host_id] = (
            row.deleted_at is not None, row.hostname, row.status, row.hypervisor,
            row.cloudflavor.flavor_id if row.cloudflavor else None, ips, row.metadata, row.source_version,
        )
    return out


def _provider(tag: str) -> CloudProvider:
    return CloudProvider.objects.create(name=f"prop-{tag}-{CloudProvider.objects.count()}")


def _shuffled(data, stream: list[Change]) -> list[list[Change]]:
    """The stream with duplicates, in any order, cut into batches of 1-4."""
    noisy = stream + data.draw(st.lists(st.sampled_from(stream), max_size=len(stream)))
    noisy = data.draw(st.permutations(noisy))
    batches, i = [], 0
    while i < len(noisy):
        size = data.draw(st.integers(1, 4))
        batches.append(noisy[i : i + size])
        i += size
    return batches


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams(), data=st.data())
def test_any_order_with_duplicates_converges(stream, data):
    # given: the in-order result, one change per apply (as events arrive)
    expected_provider = _provider("inorder")
    for change in stream:
        apply(expected_provider, [change])
    expected = state(expected_provider)
    # when: shuffled, with duplicates, in random batch sizes
    got_provider = _provider("shuffled")
    for batch in _shuffled(data, stream):
        apply(got_provider, batch)
    # then
    assert state(got_provider) == expected
    deleted = {c.external_id for c in stream if c.op == Op.DELETE}
    alive = set(CloudHost.objects.filter(cloudprovider=got_provider).values_list("host_id", flat=True))
    assert not (deleted & alive)


# -- ports, addresses and floating IPs ------------------------------------------------

fixed_sets = st.lists(st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.3"]), max_size=2)

nova_event = st.tuples(
    st.just("nova"),
    st.sampled_from(HOSTS),
    field_values,
    # the complete port set (None: the payload lists no IPs) with each port's addresses
    st.one_of(st.none(), st.dictionaries(st.sampled_from(PORTS), fixed_sets, max_size=3)),
    st.booleans(),  # also one host_ip change per listed port, as the Nova driver sends
)
port_event = st.tuples(
    st.just("port"), st.sampled_from(PORTS), st.one_of(st.none(), st.sampled_from(HOSTS)), fixed_sets
)
fip_event = st.tuples(
    st.just("fip"), st.sampled_from(FIPS), st.one_of(st.none(), st.sampled_from(PORTS)),
    st.sampled_from(["203.0.113.1", "203.0.113.2"]),
)
delete_event = st.tuples(st.just("delete"), st.sampled_from([*HOSTS, *PORTS, *FIPS]))
any_event = st.one_of(nova_event, nova_event, port_event, port_event, fip_event, delete_event)


def _addresses(addrs: list[str], kind: str = "fixed") -> list[dict]:
    return [{"address": a, "kind": kind} for a in addrs]


def translate(n: int, event: tuple) -> list[Change]:
    """One event's changes, all at the event's version, as the OpenStack
    driver emits them (Nova: the host with its complete port list, then one
    change per port; Neutron: one port or floating IP)."""
    version = make_version(n)
    what = event[0]
    if what == "nova":
        _, host, fields, ports, per_port = event
        fields = dict(fields)
        out = []
        if ports is not None:
            fields["port_ids"] = sorted(ports)
            if per_port:
                out = [
                    Change(Kind.HOST_IP, Op.UPSERT, p, {"host": host, "port_id": p, "addresses": _addresses(a)}, version)
                    for p, a in sorted(ports.items())
                ]
        return [Change(Kind.HOST, Op.UPSERT, host, fields, version), *out]
    if what == "port":
        _, port, host, addrs = event
        return [Change(Kind.HOST_IP, Op.UPSERT, port, {"host": host, "port_id": port, "addresses": _addresses(addrs)}, version)]
    if what == "fip":
        _, fip, parent, address = event
        addrs = _addresses([address], "floating") if parent else []
        return [Change(Kind.HOST_IP, Op.UPSERT, fip, {"host": None, "port_id": parent, "addresses": addrs}, version)]
    _, ext = event
    return [Change(Kind.HOST if ext in HOSTS else Kind.HOST_IP, Op.DELETE, ext, {}, version)]


@st.composite
def network_streams(draw):
    events = draw(st.lists(any_event, min_size=1, max_size=14))
    return [translate(n, event) for n, event in enumerate(events, start=1)]


def network_state(provider: CloudProvider) -> dict:
    """Everything membership decides: which host each port and floating IP is
    on, which addresses each host shows, which objects are deleted."""
    ports = {}
    for row in CloudPort.all_objects.filter(cloudprovider=provider).select_related("host"):
        ips = sorted(CloudHostIP.objects.filter(port=row).values_list("address", "kind", "host__host_id"))
        ports[row.port_id] = (
            row.deleted_at is not None, row.host.host_id if row.host else None, row.parent_port_id, ips,
            row.source_version,
        )
    hosts = {}
    for row in CloudHost.all_objects.filter(cloudprovider=provider):
        ips = sorted(CloudHostIP.objects.filter(host=row).values_list("address", "kind", "port__port_id"))
        hosts[row.host_id] = (row.deleted_at is not None, row.hostname, row.status, ips, row.source_version)
    return {"hosts": hosts, "ports": ports}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=network_streams(), data=st.data())
def test_port_membership_converges_in_any_order(events, data):
    # given: the in-order result, one event per apply (as events arrive)
    expected_provider = _provider("net-inorder")
    for changes in events:
        apply(expected_provider, changes)
    expected = network_state(expected_provider)
    # when: every change on its own, duplicated, in any order and batching
    got_provider = _provider("net-shuffled")
    for batch in _shuffled(data, [c for changes in events for c in changes]):
        apply(got_provider, batch)
    # then
    assert network_state(got_provider) == expected
    deleted = {c.external_id for changes in events for c in changes if c.op == Op.DELETE}
    alive = set(CloudHost.objects.filter(cloudprovider=got_provider).values_list("host_id", flat=True))
    alive |= set(CloudPort.objects.filter(cloudprovider=got_provider).values_list("port_id", flat=True))
    assert not (deleted & alive)  # no resurrection
    # no address is shown on a deleted host
    assert not CloudHostIP.objects.filter(host__cloudprovider=got_provider, host__deleted_at__isnull=False).exists()
