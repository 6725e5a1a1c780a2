"""JSON text of the bulk statements and listing digests, written by orjson.

The bulk paths send whole chunks as one JSON document (``sync.apply.bulk``,
the inbox's rows with their bodies, history entries), and a full sync hashes
every listed object (``sync.apply.digests``). Encoding that was a seventh of
the Python time of a full sync and of an event batch with the standard
library's encoder (datetimes went through a Python ``default`` one by one);
orjson writes the same documents 5-9 times faster, datetimes included.

What orjson refuses (a lone UTF-16 surrogate in a string, an integer past 64
bits, a dict key that is not a string) is written by the standard library
instead, exactly as before, so the database refuses or stores it as it did.
One difference is kept on purpose: orjson writes a non-finite float (NaN,
±Infinity) as ``null``, where the standard library wrote ``NaN``, which
PostgreSQL refuses (a whole chunk of a full sync failed on it). Event bodies
never get here with one: the inbox records such a message failed, as its
exact text (``sync.jsonsafety``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "has_long_number", "loads"]

# orjson reads an integer beyond 64 bits as a float (the standard library
# keeps it exact); every such literal has at least 19 digits. A number
# literal starts after one of these characters (or at the start of the
# text), a string never does: a text translated so that they become "|" and
# digits "0" holds "|" and 19 "0"s where it holds a literal of 19 digits or
# more. Two C-speed passes, a tenth of orjson's parse of the same text.
# Searched with a regular expression (\d{19}) instead, it cost 2-4 times the
# parse, and every run of 19 digits inside a string (about one 32-digit hex
# id in 1,300 has one) sent the whole text the slow way.
_BEFORE_NUMBER = b":,[- \t\n\r"
_NUMBER_MAP = bytes(
    ord("0") if chr(c).isdigit() and c < 128 else ord("|") if c in _BEFORE_NUMBER else ord(" ")
    for c in range(256)
)
_LONG_LITERAL = b"|" + b"0" * 19


def has_long_number(text: str | bytes) -> bool:
    """Whether the JSON ``text`` (a str, or UTF-8 bytes: what orjson reads)
    may hold a number literal of 19 digits or more (an integer orjson could
    not read exactly). Never false for one;
    true now and then for a string that holds such a run after one of
    ``:,[-`` or a space, which costs only the slower reading."""
    if len(text) < 19:
        return False
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    marked = text.translate(_NUMBER_MAP)
    return _LONG_LITERAL in marked or marked.startswith(_LONG_LITERAL[1:])


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None,
          sort_keys: bool = False) -> str:
    """``value`` as compact JSON text (``default`` renders what JSON has no
    type for; datetimes, dates, times and UUIDs are written natively, in ISO
    form)."""
    try:
        return orjson.dumps(value, default=default,
                            option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except orjson.JSONEncodeError:  # see the module doc
        return json.dumps(value, default=default, sort_keys=sort_keys, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, by orjson where it reads the text the same way
    (3× faster): not where the text has a run of 19 digits (an integer past
    64 bits would become a float), nor what it refuses (NaN, Infinity, lone
    surrogates; bytes that are not UTF-8), which the standard library reads
    or refuses as before (bytes: in the encoding it detects)."""
    if not has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)

