"""The compiled check of one gate's instruction schema, for instructions of the plain shape.

An instruction ``[name, [int, ...], [number, ...]]`` with every value within its bounds is
what clients send; checking it with jsonschema costs a Python call per keyword, and made
admitting a job at the limits take seconds (issue 19). :class:`PlainInstruction` checks
such an instruction in a few comparisons, and accepts nothing the gate's schema refuses:
it is compiled only from a schema of exactly the shape
:meth:`spooler.core.backends.Backend.instruction_schema` writes, and for any other
instruction it answers "ask jsonschema".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PlainInstruction"]


class PlainInstruction:
    """One gate's instruction schema ``S_g``, compiled for instructions of the plain shape:
    ``[name, [int, ...], [number, ...]]`` with every value within its bounds.

    :meth:`accepts` says True only for an instruction ``S_g`` accepts; False means "ask
    jsonschema" (it refuses the instruction, or it is of a rarer shape, e.g. a wire ``1.0``).
    :meth:`compile` knows exactly the keywords :meth:`Backend.instruction_schema` writes and
    gives None for a schema with any other, so that a change of the schema can never make
    this check accept more than the schema.
    """

    __slots__ = ("bounds", "name", "wire_max", "wire_min", "wires_max", "wires_min")

    def __init__(
        self,
        name: str,
        wires: tuple[int, int],
        wire_range: tuple[float, float],
        bounds: tuple[tuple[float, float, bool], ...],
    ) -> None:
        self.name = name
        self.wires_min, self.wires_max = wires
        self.wire_min, self.wire_max = wire_range
        self.bounds = bounds  # per parameter: minimum, maximum, whole number

    @classmethod
    def compile(cls, schema: Mapping[str, Any]) -> PlainInstruction | None:
        try:
            return cls._compile(schema)
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def _compile(cls, schema: Mapping[str, Any]) -> PlainInstruction | None:
        shape = {"type": "array", "minItems": 3, "items": False}
        if not _has(schema, shape, {"prefixItems"}) or len(schema["prefixItems"]) != 3:
            return None
        head, wires, params = schema["prefixItems"]
        if set(head) != {"const"} or type(head["const"]) is not str:
            return None
        if not _has(wires, {"type": "array"}, {"items", "minItems", "maxItems"}):
            return None
        wire = wires["items"]
        if not _has(wire, {"type": "integer"}, {"minimum", "maximum"}):
            return None
        items = params.get("prefixItems", [])
        count = {"type": "array", "items": False, "minItems": len(items), "maxItems": len(items)}
        if not _has(params, count, {"prefixItems"} if "prefixItems" in params else set()):
            return None
        bounds = []
        for item in items:
            whole = "multipleOf" in item
            if whole and (type(item["multipleOf"]) is not int or item["multipleOf"] != 1):
                return None
            rest = {"minimum", "maximum"} | ({"multipleOf"} if whole else set())
            if not _has(item, {"type": "number"}, rest):
                return None
            bounds.append((_number(item["minimum"]), _number(item["maximum"]), whole))
        return cls(
            head["const"],
            (_count(wires["minItems"]), _count(wires["maxItems"])),
            (_number(wire["minimum"]), _number(wire["maximum"])),
            tuple(bounds),
        )

    def accepts(self, item: list[Any]) -> bool:
        """*item*: a list of three whose first element is this gate's name."""
        _, wires, params = item
        if type(wires) is not list or not self.wires_min <= len(wires) <= self.wires_max:
            return False
        low, high = self.wire_min, self.wire_max
        for wire in wires:
            if type(wire) is not int or not low <= wire <= high:
                return False
        if type(params) is not list or len(params) != len(self.bounds):
            return False
        for value, (minimum, maximum, whole) in zip(params, self.bounds, strict=True):
            kind = type(value)
            if (kind is not float and kind is not int) or not minimum <= value <= maximum:
                return False
            if whole and value % 1:
                return False
        return True


def _has(schema: Mapping[str, Any], fixed: Mapping[str, Any], free: set[str]) -> bool:
    """*schema* has exactly the keys of *fixed* (with those values) and of *free*."""
    if set(schema) != set(fixed) | free:
        return False
    return all(
        type(schema[key]) is type(value) and schema[key] == value for key, value in fixed.items()
    )


def _number(value: Any) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"not a count: {value!r}")
    return value
