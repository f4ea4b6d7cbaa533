"""The body of ``post_job``: a flat JSON object, read in one linear pass before anything else.

The released client posts ``{"job": "<the job as a JSON string>", "username": U, "token":
T}``: its token is inside the body, so the body is read before the caller is known, by anyone.
It is therefore read as a *flat* object only: every value a string, number, ``true``,
``false`` or ``null``, each parsed on its own by Python's C decoder (``raw_decode``). A body
of nested brackets is refused at its first bracket, one of more than :data:`KEYS_MAX` keys at
the next key, and a body of any size costs one pass in C, about what a plain job of its size
costs (``tests/gateway/test_gateway.py`` compares them), where a full parse of 1.8 MB of
``[[],[],...]``
took 170 ms and the strict job reader's checks on it 850 ms. The job string itself is not
parsed here: the spooler reads it, as any job file.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["KEYS_MAX", "EnvelopeError", "read_flat_object"]

_SPACE = re.compile(r"[ \t\n\r]*")
KEYS_MAX = 16  # the client sends three


class EnvelopeError(ValueError):
    """The body is not a flat JSON object; the message says where."""


def _no_constant(name: str) -> Any:
    raise EnvelopeError(f"{name} is not allowed (JSON numbers are finite)")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def read_flat_object(data: bytes) -> dict[str, Any]:
    """The JSON object of *data*, whose values are all scalars (raises :class:`EnvelopeError`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"the body is not UTF-8 (byte {exc.start})") from None
    at = _skip(text, 0)
    if text[at : at + 1] != "{":
        raise EnvelopeError("the body must be a JSON object")
    found: dict[str, Any] = {}
    at = _skip(text, at + 1)
    if text[at : at + 1] == "}":
        return _finished(text, at + 1, found)
    while True:
        if text[at : at + 1] != '"':
            raise EnvelopeError(f"a key must be a string (character {at})")
        key, at = _scalar(text, at)
        at = _skip(text, at)
        if text[at : at + 1] != ":":
            raise EnvelopeError(f"':' expected after a key (character {at})")
        at = _skip(text, at + 1)
        if text[at : at + 1] in ("{", "["):
            raise EnvelopeError(
                f"the value of {str(key)[:40]!r} must be a string, a number, true, false or "
                "null (the job goes in as a JSON string)"
            )
        value, at = _scalar(text, at)
        if key in found:
            raise EnvelopeError(f"the key {str(key)[:40]!r} appears twice")
        if len(found) == KEYS_MAX:
            raise EnvelopeError(f"more than {KEYS_MAX} keys")
        found[key] = value
        at = _skip(text, at)
        if text[at : at + 1] == "}":
            return _finished(text, at + 1, found)
        if text[at : at + 1] != ",":
            raise EnvelopeError(f"',' or '}}' expected (character {at})")
        at = _skip(text, at + 1)


def _skip(text: str, at: int) -> int:
    """The position after the white space at *at*."""
    space = _SPACE.match(text, at)
    return at if space is None else space.end()


def _scalar(text: str, at: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, at)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc.msg} (character {exc.pos})") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise EnvelopeError(f"not JSON: {str(exc)[:80]}") from None
    return value, end


def _finished(text: str, at: int, found: dict[str, Any]) -> dict[str, Any]:
    if _skip(text, at) != len(text):
        raise EnvelopeError(f"data after the object (character {at})")
    return found
