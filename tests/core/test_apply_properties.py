"""Property: any shuffling and duplication of a change stream converges to the
state of the in-order stream, and never resurrects a deleted object."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.apply import apply
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudHost, CloudHostIP, CloudProvider

pytestmark = pytest.mark.django_db

HOSTS = ["vm-a", "vm-b", "vm-c"]
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams(), data=st.data())
def test_any_order_with_duplicates_converges(stream, data):
    # given: the in-order result, one change per apply (as events arrive)
    expected_provider = _provider("inorder")
    for change in stream:
        apply(expected_provider, [change])
    expected = state(expected_provider)
    # when: shuffled, with duplicates, in random batch sizes
    noisy = stream + data.draw(st.lists(st.sampled_from(stream), max_size=len(stream)))
    noisy = data.draw(st.permutations(noisy))
    got_provider = _provider("shuffled")
    i = 0
    while i < len(noisy):
        size = data.draw(st.integers(1, 4))
        apply(got_provider, noisy[i : i + size])
        i += size
    # then
    assert state(got_provider) == expected
    deleted = {c.external_id for c in stream if c.op == Op.DELETE}
    alive = set(CloudHost.objects.filter(cloudprovider=got_provider).values_list("host_id", flat=True))
    assert not (deleted & alive)
