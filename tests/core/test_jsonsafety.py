"""``jsonsafety.parse``: which bodies need the per-value walk."""

from __future__ import annotations

import json

from sync.jsonsafety import parse


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
