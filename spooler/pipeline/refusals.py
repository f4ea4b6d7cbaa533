"""The sentences that refuse a job: what is wrong and where, in the client's terms.

A jsonschema error (:meth:`Refusals.describe`) and a job over the size limits
(:meth:`Refusals.too_many_experiments`, :meth:`Refusals.too_many_instructions`) are said
for the backend at hand, with the place in the job, e.g.
``experiment_1.instructions[3]: parameter 7.1 of rlx is above the maximum 6.2832``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jsonschema.exceptions import ValidationError

from spooler.core.backends import EXPERIMENT_KEY_PATTERN, Backend
from spooler.core.strictjson import describe_value

__all__ = ["EXPERIMENT_KEY", "EXPERIMENT_KEYS", "Refusals"]

EXPERIMENT_KEY = re.compile(EXPERIMENT_KEY_PATTERN.rstrip("$").lstrip("^"))
EXPERIMENT_KEYS = ("instructions", "num_wires", "shots", "wire_order", "seed")


def _fmt(number: float) -> str:
    return f"{number:.5g}"


class Refusals:
    """The sentences for one backend, with its limit of instructions per experiment."""

    def __init__(self, backend: Backend, max_instructions: int) -> None:
        self.backend = backend
        self.max_instructions = max_instructions

    def too_many_experiments(self, count: int) -> str:
        return (
            f"the job has {count} experiments; {self.backend.name} takes at most "
            f"{self.backend.max_experiments}"
        )

    def too_many_instructions(self, path: Sequence[Any], count: int) -> str:
        return (
            f"{_where(path)}: {count} instructions is above the limit of "
            f"{self.max_instructions} per experiment on {self.backend.name}"
        )

    def describe(self, error: ValidationError, document: Any) -> str:
        """What jsonschema's *error* in *document* means, and where it is."""
        instance: Any = error.instance
        path = list(error.absolute_path)
        where = _where(path)
        if len(path) >= 3 and path[1] == "instructions" and isinstance(path[2], int):
            instruction = instance if len(path) == 3 else _at(document, path[:3])
            message = self._describe_instruction(error, path[3:], instruction)
            return f"{_where(path[:3])}: {message}"
        validator = error.validator
        if not path:
            if validator == "type":
                return (
                    "the job must be a JSON object with keys experiment_0, experiment_1, ...; "
                    f"got {_json_type(document)}"
                )
            if validator == "maxProperties":
                return self.too_many_experiments(len(document))
            if validator == "minProperties":
                return "the job has no experiments"
            if validator == "propertyNames" or "propertyNames" in error.schema_path:
                return (
                    "experiment names must be experiment_0, experiment_1, ...; got "
                    f"{describe_value(instance)}"
                )
        if len(path) == 1:
            if validator == "type":
                got = _json_type(instance)
                return f"{where}: an experiment must be a JSON object, got {got}"
            if validator == "additionalProperties":
                unknown = sorted(set(instance) - set(EXPERIMENT_KEYS))
                return (
                    f"{where}: unknown key {describe_value(unknown[0]) if unknown else '?'} "
                    f"(allowed: {', '.join(EXPERIMENT_KEYS)})"
                )
            if validator == "required":
                return f"{where}: {error.message.replace(' is a required property', '')} is missing"
        if len(path) == 2:
            key = path[1]
            value = instance
            if key == "shots" and validator == "maximum":
                return (
                    f"{where}: {value} shots is above {self.backend.name}'s maximum of "
                    f"{self.backend.max_shots}"
                )
            if key == "num_wires" and validator == "maximum":
                return (
                    f"{where}: {value} wires is above {self.backend.name}'s "
                    f"{self.backend.num_wires}"
                )
            if key == "instructions" and validator == "maxItems":
                return self.too_many_instructions(path, len(value))
            if validator in ("type", "minimum", "maximum", "enum"):
                return f"{where}: {_value_problem(error)}"
        return f"{where or 'job'}: {_short(error.message)}"

    def _describe_instruction(
        self, error: ValidationError, rest: list[Any], instruction: Any
    ) -> str:
        validator = error.validator
        instance: Any = error.instance
        gate_name = instruction[0] if isinstance(instruction, list) and instruction else None
        gate = self.backend.gates.get(gate_name) if isinstance(gate_name, str) else None
        label = gate_name if gate is not None else "the instruction"
        if not rest:
            return (
                "an instruction must be [name, [wires], [parameters]], got "
                f"{describe_value(instance, 60)}"
            )
        part = rest[0]
        if part == 0:
            if validator == "type":
                return f"the gate name must be a string, got {describe_value(instance)}"
            return (
                f"unknown gate {describe_value(instance)}; {self.backend.name} knows "
                f"{', '.join(sorted(self.backend.gates))}"
            )
        if part == 1:
            if len(rest) == 2:
                if validator == "type":
                    return f"wires of {label} must be integers, got {describe_value(instance)}"
                if validator in ("maximum", "minimum"):
                    return (
                        f"wire {instance} of {label} is out of range ({self.backend.name} "
                        f"has wires 0 to {self.backend.num_wires - 1})"
                    )
            if validator == "type":
                return f"the wires of {label} must be a list, got {describe_value(instance)}"
            if (
                gate is not None
                and gate.wires is not None
                and validator in ("minItems", "maxItems")
            ):
                return f"{label} acts on {gate.wires} wire(s), got {len(instance)}"
            if validator == "minItems":
                return f"{label} needs at least one wire"
            if validator == "maxItems":
                return f"{label} names {len(instance)} wires, more than {self.backend.num_wires}"
        if part == 2:
            if len(rest) == 2 and gate is not None:
                value = instance
                param = gate.params[rest[1]] if rest[1] < len(gate.params) else None
                if validator == "type":
                    return (
                        f"parameter {rest[1]} of {label} must be a number, got "
                        f"{_json_type(value)} {describe_value(value)}"
                    )
                if param is not None and validator == "maximum":
                    return (
                        f"parameter {value} of {label} is above the maximum {_fmt(param.maximum)}"
                    )
                if param is not None and validator == "minimum":
                    return (
                        f"parameter {value} of {label} is below the minimum {_fmt(param.minimum)}"
                    )
                if param is not None and validator == "multipleOf":
                    return f"parameter {value} of {label} ({param.name}) must be a whole number"
            if validator == "type":
                got = describe_value(instance)
                return f"the parameters of {label} must be a list, got {got}"
            if gate is not None and validator in ("minItems", "maxItems", "items"):
                count = len(instance) if isinstance(instance, list) else "?"
                return f"{label} takes {len(gate.params)} parameter(s), got {count}"
        return _short(error.message)


def _where(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            safe = part if EXPERIMENT_KEY.fullmatch(part) or part in EXPERIMENT_KEYS else None
            text += ("." if text else "") + (safe or describe_value(part, 30))
    return text


def _at(document: Any, path: Sequence[Any]) -> Any:
    for part in path:
        document = document[part]
    return document


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _value_problem(error: ValidationError) -> str:
    value: Any = error.instance
    if error.validator == "type":
        return f"must be {error.validator_value}, got {_json_type(value)} {describe_value(value)}"
    if error.validator == "minimum":
        return f"{describe_value(value)} is below the minimum {error.validator_value}"
    if error.validator == "maximum":
        return f"{describe_value(value)} is above the maximum {error.validator_value}"
    allowed: Any = error.validator_value
    return f"{describe_value(value)} is not one of {', '.join(map(str, allowed))}"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
