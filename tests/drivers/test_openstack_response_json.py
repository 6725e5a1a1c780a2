"""Listing pages are read by ``pages.response_json``: orjson where it reads
the body exactly as ``response.json()`` does, requests' own reading where it
might not (another charset, a byte order mark, integers past 64 bits, what
orjson refuses)."""

from __future__ import annotations

import json

import pytest
import requests

from sync.drivers.base import DriverError
from sync.drivers.openstack.pages import Api, response_json


def _response(content: bytes, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = content
    response.headers["Content-Type"] = content_type
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


BODIES = [
    b'{"servers": [{"id": "a", "name": "vm-\xc3\xa9", "flavor": {"vcpus": 2}}]}',
    b'{"big": 123456789012345678901234567890, "neg": -98765432109876543210}',
    b'{"f": 1.5e300, "tiny": 5e-324, "dup": 1, "dup": 2, "nested": [[[{}]]]}',
    b'{"nan": NaN, "inf": Infinity}',  # (the standard library's extension)
    b'{"s": "\\ud800 alone"}',  # a lone surrogate escape
    b'\xef\xbb\xbf{"bom": true}',
    b'  {"spaced": null}  ',
    b'{"s": "\xed\xa0\x80"}',  # a surrogate's bytes: not UTF-8
    '{"big": 12345678901234567890}'.encode("utf-16"),
    '{"big": 12345678901234567890}'.encode("utf-16-le"),
    b"",
]


def _read(read, response: requests.Response) -> str:
    """What ``read`` makes of the response, as comparable text."""
    try:
        value = read(response)
    except ValueError as exc:
        return f"refused: {type(exc).__name__}"
    return json.dumps([value, {k: type(v).__name__ for k, v in value.items()}], sort_keys=True)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "text/plain"])
@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_a_body_reads_as_requests_reads_it(body, content_type):
    expected = _read(requests.Response.json, _response(body, content_type))
    assert _read(response_json, _response(body, content_type)) == expected


def test_integers_past_64_bits_stay_exact():
    got = response_json(_response(b'{"big": 123456789012345678901234567890}'))
    assert got["big"] == 123456789012345678901234567890


def test_a_body_in_another_declared_charset_is_read_in_that_charset():
    body = '{"name": "caf\u00e9"}'.encode("latin-1")
    got = response_json(_response(body, "application/json; charset=ISO-8859-1"))
    assert got == {"name": "caf\u00e9"}


def test_not_json_is_a_driver_error_as_before():
    api = Api.__new__(Api)  # (json() reads no connection)
    with pytest.raises(DriverError, match="listing servers"):
        api.json(_response(b"<html>gateway timeout</html>"), "listing servers")
    with pytest.raises(DriverError, match="not a JSON object"):
        api.json(_response(b"[1, 2]"), "listing servers")
