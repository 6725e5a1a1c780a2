"""A fake OpenStack cloud (Keystone, Nova, Glance, Neutron) over real HTTP.

``FakeOpenStack`` is the server (start/stop or ``with``), ``FakeCloud`` its
seedable data, ``Fault`` an injected failure. ``fake_openstack_server`` is a
context manager for fixtures. See ``server`` for the switches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.fake_openstack.data import BASE_TIME, FakeCloud, iso
from tests.fake_openstack.server import FakeOpenStack, Fault

__all__ = ["BASE_TIME", "FakeCloud", "FakeOpenStack", "Fault", "fake_openstack_server", "iso"]


@contextmanager
def fake_openstack_server(data: FakeCloud | None = None) -> Iterator[FakeOpenStack]:
    """Start a fake cloud for the duration of a ``with`` block (or a fixture)."""
    fake = FakeOpenStack(data)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
