"""What the database cannot store of a parsed JSON message, said plainly.

JSON allows what PostgreSQL's ``jsonb`` (and psycopg) refuse: ``\\u0000`` in a
string, lone UTF-16 surrogates (``\\ud800``), numbers that parse to infinity
(``1e400``); and nesting deep enough to exhaust Python's recursion. The
endpoint refuses only whole bodies nested too deeply (cheap to detect, see
``too_deep``); a single bad message inside a batch is recorded losslessly and
failed with the reason found here, so its neighbours are still processed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from sync.jsontext import has_long_number

__all__ = ["lossless_text", "parse", "too_deep", "unstorable_reason"]

# A \u0000 or surrogate escape in a JSON text (what NaN, Infinity and
# overflowing numbers parse to is caught while parsing, see ``parse``).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def too_deep(text: str, value: Any, limit: int) -> bool:
    """True when ``value`` (parsed from ``text``) nests more than ``limit``
    containers. Counting brackets in the text is a C-speed necessary
    condition, so ordinary bodies are never walked."""
    if text.count("[") + text.count("{") <= limit:
        return False
    return _depth_exceeds(value, limit)


def parse(text: str, limit: int) -> tuple[Any, bool]:
    """``json.loads(text)`` and whether the value may hold something the
    database cannot store. Decided while parsing (non-finite numbers) and by
    C-speed scans of the text, so ordinary bodies skip the per-value walk of
    ``unstorable_reason``. Parsed by orjson (3× faster) where it gives the
    same value; what it refuses or might read differently (integers past 64
    bits), by the standard library."""
    if not has_long_number(text):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, Infinity, 1e400, a lone surrogate, too deep, invalid: as below
        else:  # (orjson refuses every non-finite number)
            return value, bool(_RISKY_ESCAPE.search(text)) or too_deep(text, value, limit)
    risky = False

    def number(literal: str) -> float:
        nonlocal risky
        value = float(literal)
        risky = risky or not math.isfinite(value)
        return value

    def constant(literal: str) -> float:
        nonlocal risky
        risky = True
        return float(literal)

    value = json.loads(text, parse_float=number, parse_constant=constant)
    # (a body of many messages has many brackets but no depth: the walk over
    # containers alone is far cheaper than the per-string one it spares)
    risky = risky or bool(_RISKY_ESCAPE.search(text)) or too_deep(text, value, limit)
    return value, risky


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Level by level: one comprehension per level instead of a stack entry
    # (a tuple) per container.
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
    return False


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone UTF-16 surrogate (\\u{ord(text[exc.start]):04x}), which is not Unicode"
    return None


def unstorable_reason(value: Any, max_depth: int) -> str | None:
    """Why ``value`` cannot be stored as JSON in the database, or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                return f"contains {problem} in a string; the database cannot store it"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"contains a number out of range ({item}); the database cannot store it"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key in item:
                    problem = _string_problem(key)
                    if problem:
                        return f"contains {problem} in a key; the database cannot store it"
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def lossless_text(value: Any) -> str | None:
    """The message as ASCII-only JSON text (escapes keep NULs, surrogates and
    infinities exactly), or None if even that is impossible (too deep)."""
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (RecursionError, ValueError):
        return None
