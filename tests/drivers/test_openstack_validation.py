"""Values the inventory cannot hold are a bad payload with a clear reason,
whatever is already stored: sizes out of range, timestamps that are not dates."""

from __future__ import annotations

import pytest

from sync.drivers.base import BadPayload
from sync.drivers.openstack.notifications import translate
from tests.fixtures import load_nova_versioned, with_wire_fields


def create_end() -> dict:
    return with_wire_fields(load_nova_versioned("instance-create-end.json"), message_id="m-1")


def flavor(message: dict) -> dict:
    return message["payload"]["nova_object.data"]["flavor"]["nova_object.data"]


@pytest.mark.parametrize(
    "key, value, shown",
    [("memory_mb", -512, "got -512"), ("vcpus", 10**400, "got a 401-digit number"),
     ("root_gb", 2**31, f"got {2**31}")],
)
def test_a_flavor_size_out_of_range_is_a_bad_payload(key, value, shown):
    message = create_end()
    flavor(message)[key] = value
    with pytest.raises(BadPayload, match=rf"{key} must be a size from 0 to 2147483647, {shown}"):
        translate(message)


def test_sizes_in_range_translate():
    message = create_end()
    flavor(message).update(memory_mb=0, vcpus=2**31 - 1)
    assert translate(message).changes


def test_a_timestamp_that_is_not_a_date_is_a_bad_payload():
    message = create_end()
    message["timestamp"] = "yesterday at noon"
    with pytest.raises(BadPayload, match="message timestamp 'yesterday at noon' is not a date"):
        translate(message)
