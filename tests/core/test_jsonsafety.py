"""``jsonsafety.parse``: which bodies need the per-value walk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync.jsonsafety import parse

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures"


def test_a_body_of_many_shallow_messages_is_not_walked():
    # 50 messages of 30 containers each: far more brackets than the depth limit
    message = {"payload": {f"k{i}": {"v": [i]} for i in range(15)}}
    value, risky = parse(json.dumps([message] * 50), 100)
    assert len(value) == 50 and not risky


def test_deep_nesting_nul_and_infinity_are_still_caught():
    assert parse(json.dumps([{"x": [[[[[1]]]]]}]), 4)[1]
    assert parse('[{"x": "a\\u0000b"}]', 100)[1]
    assert parse('[{"x": 1e400}]', 100)[1]
    assert not parse(json.dumps([{"x": [[[1]]]}]), 5)[1]  # 5 levels: at the limit


def test_integers_past_64_bits_stay_exact():
    value, risky = parse('[{"big": 123456789012345678901234567890, "neg": -18446744073709551617}]', 100)
    assert value == [{"big": 123456789012345678901234567890, "neg": -18446744073709551617}]
    assert all(isinstance(v, int) for v in value[0].values()) and not risky


def test_every_sample_parses_as_the_standard_library_parses_it():
    # the upstream notification samples, one body of all, and the awkward literals
    texts = [p.read_text() for p in sorted(SAMPLES.rglob("*.json"))]
    assert len(texts) > 10
    texts += ["[" + ",".join(texts) + "]", '{"a": 1, "a": 2}', '[-0, 1.5e-400, 1e308, "\\u00e9"]',
              '[0.1000000000000000055511151231257827, 18446744073709551615]']
    for text in texts:
        value, _ = parse(text, 100)
        assert value == json.loads(text)
        assert json.dumps(value) == json.dumps(json.loads(text))  # same types too (int/float)


def test_what_orjson_refuses_is_still_read_and_flagged():
    for text in ('[NaN]', '[{"x": -Infinity}]', '["\\ud800"]', "[1e400]"):
        value, risky = parse(text, 100)
        assert risky and len(value) == 1
    with pytest.raises(ValueError):
        parse("\ufeff{}", 100)
    with pytest.raises(ValueError):
        parse('{"a": ', 100)
