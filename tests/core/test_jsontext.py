"""``sync.jsontext``: orjson where it writes what the standard library wrote;
the standard library where orjson refuses."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import jsontext
from sync.apply import apply
from sync.apply.bulk import _plain
from sync.changes import Change, Kind, Op, make_version
from sync.models import CloudHost

UTC = datetime.UTC
VALUES = [
    {"name": "zażółć 🚀", "n": 1, "f": 0.1, "big": 2**63 - 1, "neg": -(2**63), "none": None,
     "t": True, "list": [1, "a", [None, {"x": {}}]], "esc": 'quote " back \\ tab \t nl \n \x01'},
    [datetime.datetime(2026, 11, 29, 3, 4, 5, 6, tzinfo=UTC),
     datetime.datetime(2026, 11, 29, 3, 4, 5, tzinfo=UTC),
     datetime.datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Warsaw")),
     datetime.datetime(2026, 1, 1), datetime.date(2026, 2, 3), datetime.time(4, 5, 6, 7)],
    {"b": 1, "a": {"d": 2, "c": [3, {"z": 0, "y": 1}]}},
    [uuid.UUID("12345678-1234-5678-1234-567812345678"), Decimal("1.50")],
    "",
    [],
]


def _stdlib(value, **kw):
    return json.dumps(value, default=_plain, separators=(",", ":"), **kw)


@pytest.mark.parametrize("value", VALUES)
def test_the_same_document_as_the_standard_library(value):
    assert json.loads(jsontext.dumps(value, default=_plain)) == json.loads(_stdlib(value))
    assert jsontext.dumps(value, default=_plain, sort_keys=True) == (
        json.dumps(json.loads(_stdlib(value)), sort_keys=True, separators=(",", ":"),
                   ensure_ascii=False))


@pytest.mark.parametrize("value", [
    {"s": "lone \ud800 surrogate"},  # orjson refuses; stdlib escapes (the database refuses it)
    {"n": 2**64},  # past 64 bits
    {1: "int key"},
])
def test_what_orjson_refuses_is_written_by_the_standard_library(value):
    assert jsontext.dumps(value, default=_plain) == _stdlib(value)


def test_what_neither_can_write_still_raises():
    with pytest.raises(TypeError):
        jsontext.dumps({"x": object()}, default=_plain)


def test_non_finite_floats_become_null():
    assert json.loads(jsontext.dumps([float("nan"), float("inf"), -float("inf"), 1.5])) == (
        [None, None, None, 1.5])


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk statements")
def test_values_reach_the_database_exactly(provider):
    meta = {"name": "zażółć 🚀", "big": 2**64 + 1, "nested": {"l": [1, 2.5, None, "\\"]},
            "esc": 'quote " back \\ tab \t nl \n \x01', 1: "int key"}
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "vm-1", {"hostname": "ä", "metadata": meta},
                            make_version(1))])
    host = CloudHost.objects.get(cloudprovider=provider, host_id="vm-1")
    assert host.hostname == "ä"
    assert host.metadata == json.loads(json.dumps(meta))  # (JSON keys are strings)


def test_loads_reads_as_the_standard_library_reads():
    from sync.jsontext import loads

    for text in ('{"a": 123456789012345678901, "b": -18446744073709551617}',  # (past 64 bits)
                 '[1.5, -0, 18446744073709551615, "\\u00e9", null]', "[NaN, Infinity]",
                 # read by orjson:
                 '[1.5, -0, -0.0, 1e308, 123456789012345678, -9223372036854775, "\\u00e9"]',
                 '{"a": {"b": [true, false, null, 0.1, 2e-300]}, "a": 2}'):
        assert repr(loads(text)) == repr(json.loads(text))
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": ')
    assert loads("1e400") == float("inf")  # orjson refuses it; the standard library, as before


_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=25)
_JSON_SCALARS = (
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.integers(min_value=-(2**64), max_value=2**64)
    # strings with runs of digits after the characters a number follows
    | st.builds(lambda pre, digits, post: pre + digits + post,
                st.sampled_from(["", "x", ":", ",", "[", "-", " ", "é", "\t"]), _DIGITS,
                st.sampled_from(["", "x", "]", " "]))
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


_SPACE = st.text(alphabet=" \t\r\n", max_size=3)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from([None, 0, 2]), _SPACE, _SPACE, _SPACE, st.booleans())
def test_loads_reads_any_document_as_the_standard_library_does(
    value, indent, lead, after_comma, after_colon, as_bytes
):
    """Whatever the numbers and digit runs in it, whatever JSON whitespace
    between its tokens, as text or bytes: the same values and types (an
    integer past 64 bits never becomes a float: ``has_long_number`` never
    misses a literal of 19 digits)."""
    separators = ("," + after_comma, ":" + after_colon)
    text = lead + json.dumps(value, indent=indent, separators=separators, ensure_ascii=False)
    expected = json.loads(text)
    got = jsontext.loads(text.encode() if as_bytes else text)
    assert repr(got) == repr(expected)


def test_has_long_number_finds_literals_not_strings():
    from sync.jsontext import has_long_number

    long_literals = ["1234567890123456789", "[1234567890123456789]", '{"a":-1234567890123456789}',
                     '{"a": 12345678901234567890}', "\n1234567890123456789",
                     '{"a":[1,\r\n\t12345678901234567890.5]}', '{"é":1234567890123456789}']
    in_strings = ['{"a":"x1234567890123456789"}', '{"a":"1234567890123456789"}',
                  '{"a":123456789012345678}', '{"a":1.1234567890123456789}',
                  '{"id":"4f1e2d9012345678901234567abc"}']
    for text in long_literals:
        assert has_long_number(text) and has_long_number(text.encode()), text
    for text in in_strings:
        assert not has_long_number(text) and not has_long_number(text.encode()), text
