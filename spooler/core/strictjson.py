"""A strict JSON reader for untrusted job files.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e999`` (as inf), keeps the last of
duplicate keys silently and raises RecursionError on deep nesting. This reader refuses
each of these with a message that says what and where.
"""

from __future__ import annotations

import json
import math
from typing import Any

from spooler.core.errors import JobRejected

__all__ = ["describe_value", "loads_strict"]

_MAX_INT_DIGITS = 30


def describe_value(value: object, limit: int = 40) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    raise JobRejected(f"{name} is not allowed in a job (JSON numbers must be finite)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JobRejected(f"the number {describe_value(text)} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise JobRejected(
            f"the integer {describe_value(text)} has more than {_MAX_INT_DIGITS} digits"
        )
    return int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JobRejected(f"the key {describe_value(key)} appears twice in one object")
        result[key] = value
    return result


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed document, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def loads_strict(data: bytes, *, max_depth: int, what: str = "the job file") -> Any:
    """Parse UTF-8 JSON bytes strictly; raise :class:`JobRejected` with the reason."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:4]):
        raise JobRejected(f"{what} is not UTF-8 (it looks like UTF-16); save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        raise JobRejected(f"{what} starts with a byte-order mark; save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobRejected(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise JobRejected(f"{what} is empty")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise JobRejected(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JobRejected(f"{what} nests deeper than {max_depth} levels") from None
    if _depth(value, max_depth) > max_depth:
        raise JobRejected(f"{what} nests deeper than {max_depth} levels")
    return value
