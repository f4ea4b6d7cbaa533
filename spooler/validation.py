"""Validation of untrusted job files, in a fixed order.

1. strict JSON (UTF-8, finite numbers, no duplicate keys, bounded depth and size),
2. the backend's JSON schema (jsonschema, draft 2020-12),
3. the checks a schema cannot express (experiment names, wires within the experiment's
   ``num_wires``, distinct wires, the coupling map), then what the machine's physics
   forbids (:mod:`spooler.semantics`: the names without gaps, the machine's wire order, a
   wire loaded once and left alone once measured, the virtual machine's size),

each failure raising :class:`JobRejected` with a message that says what is wrong and where,
e.g. ``experiment_1.instructions[3]: parameter 7.1 of rlx is above the maximum 6.2832``.
The job id (from the file name) is checked before all of this, by the intake.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .backends import EXPERIMENT_KEY_PATTERN, Backend, Gate
from .errors import JobRejected
from .model import Experiment, Instruction, Job
from .semantics import check_experiment, check_experiment_names
from .settings import Limits
from .strictjson import describe_value, loads_strict

__all__ = ["JobValidator"]

_EXPERIMENT_KEY = re.compile(EXPERIMENT_KEY_PATTERN.rstrip("$").lstrip("^"))
_EXPERIMENT_KEYS = ("instructions", "num_wires", "shots", "wire_order", "seed")


def _fmt(number: float) -> str:
    return f"{number:.5g}"


class JobValidator:
    """Validates job files for one backend under the configured limits."""

    def __init__(self, backend: Backend, limits: Limits) -> None:
        self.backend = backend
        self.limits = limits

    @cached_property
    def schema(self) -> dict[str, Any]:
        return self.backend.json_schema(self.limits.instructions_per_experiment_max)

    @cached_property
    def _schema_validator(self) -> jsonschema.Draft202012Validator:
        """The whole schema in one validator: the reference the fast path is tested against."""
        jsonschema.Draft202012Validator.check_schema(self.schema)
        return jsonschema.Draft202012Validator(self.schema)

    @cached_property
    def _parts(self) -> _SchemaParts:
        return _SchemaParts(self.schema)

    def prepare(self) -> None:
        """Build (and check) the schema now, so that a broken one stops the daemon at start."""
        _ = self._schema_validator, self._parts

    def validate_bytes(self, data: bytes) -> Job:
        if len(data) > self.limits.job_file_max_bytes:
            raise JobRejected(
                f"the job file has {len(data)} bytes, more than the limit of "
                f"{self.limits.job_file_max_bytes} bytes"
            )
        return self.validate_document(loads_strict(data, max_depth=self.limits.json_depth_max))

    def validate_document(self, document: Any) -> Job:
        """Schema (applied in two parts, see :class:`_SchemaParts`), then semantics."""
        error = best_match(self._parts.skeleton.iter_errors(document))
        if error is not None:
            raise JobRejected(self._describe(error, document))
        for name, experiment in document.items():
            for index, item in enumerate(experiment["instructions"]):
                error = self._parts.instruction_error(item)
                if error is not None:
                    error.path.extendleft(reversed((name, "instructions", index)))
                    raise JobRejected(self._describe(error, document))
        return self._semantic(document)

    def schema_verdict(self, document: Any) -> bool:
        """The whole schema's verdict in one pass (the reference for tests)."""
        return bool(self._schema_validator.is_valid(document))

    # -- the checks a schema cannot express -------------------------------------------------

    def _semantic(self, document: dict[str, Any]) -> Job:
        experiments = []
        for name in sorted(document, key=_experiment_index):
            experiments.append(self._experiment(name, document[name]))
        check_experiment_names([_experiment_index(e.name)[0] for e in experiments])
        for experiment in experiments:
            check_experiment(self.backend, experiment, self.limits.exact_states_max)
        return Job(tuple(experiments))

    def _experiment(self, name: str, raw: dict[str, Any]) -> Experiment:
        if _EXPERIMENT_KEY.fullmatch(name) is None:
            raise JobRejected(
                "experiment names must be experiment_0, experiment_1, ...; got "
                f"{describe_value(name)}"
            )
        num_wires = int(raw["num_wires"])
        instructions = tuple(
            self._instruction(f"{name}.instructions[{i}]", item, num_wires)
            for i, item in enumerate(raw["instructions"])
        )
        seed = raw.get("seed")
        return Experiment(
            name=name,
            instructions=instructions,
            num_wires=num_wires,
            shots=int(raw["shots"]),
            wire_order=raw.get("wire_order", self.backend.default_wire_order),
            seed=None if seed is None else int(seed),
        )

    def _instruction(self, where: str, item: Sequence[Any], num_wires: int) -> Instruction:
        name, raw_wires, raw_params = item
        gate = self.backend.gates[name]
        wires = tuple(int(w) for w in raw_wires)
        for wire in wires:
            if wire >= num_wires:
                raise JobRejected(
                    f"{where}: wire {wire} of {name} is outside the experiment's num_wires "
                    f"{num_wires} (wires 0 to {num_wires - 1})"
                )
        if len(set(wires)) != len(wires):
            raise JobRejected(f"{where}: the wires of {name} must be distinct, got {list(wires)}")
        if gate.coupling_map is not None and wires not in gate.coupling_map:
            raise JobRejected(f"{where}: {name} may act on {_groups(gate)}, not on {list(wires)}")
        return Instruction(name, wires, tuple(float(p) for p in raw_params))

    # -- turning a jsonschema error into a sentence ---------------------------------------

    def _describe(self, error: ValidationError, document: Any) -> str:
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
                return (
                    f"the job has {len(document)} experiments; {self.backend.name} takes at most "
                    f"{self.backend.max_experiments}"
                )
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
                unknown = sorted(set(instance) - set(_EXPERIMENT_KEYS))
                return (
                    f"{where}: unknown key {describe_value(unknown[0]) if unknown else '?'} "
                    f"(allowed: {', '.join(_EXPERIMENT_KEYS)})"
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
                return (
                    f"{where}: {len(value)} instructions is above the limit of "
                    f"{self.limits.instructions_per_experiment_max}"
                )
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


class _SchemaParts:
    """The backend's job schema applied in two steps, with exactly the whole schema's verdict.

    The schema checks each instruction with ``base ∧ allOf: [if name == g then S_g, ...]``
    over all gates g, and jsonschema evaluates every ``if`` for every instruction. Here the
    job is first validated with the instruction items left open (the skeleton), then each
    instruction against ``S_g`` for its own gate g (or ``base`` when its name is no gate,
    which ``base`` refuses). Only g's ``if`` can hold for an array whose first item is g,
    and ``S_g`` (a complete instruction schema, :meth:`Backend.instruction_schema`) implies
    ``base``, so the verdict is the same; jsonschema still does all the checking.
    tests/test_validation_equivalence.py holds it to that. Instructions found valid are
    remembered by their exact JSON text (bounded), since clients repeat them a lot.
    """

    _MEMO_MAX = 65536

    def __init__(self, schema: dict[str, Any]) -> None:
        skeleton = copy.deepcopy(schema)
        instructions = skeleton["additionalProperties"]["properties"]["instructions"]
        instruction = instructions.pop("items")
        instructions["items"] = True
        branches = instruction.pop("allOf")
        base = instruction
        cls = jsonschema.Draft202012Validator
        self.skeleton = cls(skeleton)
        self.base = cls(base)
        self.by_gate = {
            branch["if"]["prefixItems"][0]["const"]: cls(branch["then"]) for branch in branches
        }
        self._valid: set[str] = set()

    def for_instruction(self, item: Any) -> jsonschema.Draft202012Validator:
        if isinstance(item, list) and item and isinstance(item[0], str):
            return self.by_gate.get(item[0], self.base)
        return self.base

    def instruction_error(self, item: Any) -> ValidationError | None:
        key = json.dumps(item)
        if key in self._valid:
            return None
        error: ValidationError | None = best_match(self.for_instruction(item).iter_errors(item))
        if error is None:
            if len(self._valid) >= self._MEMO_MAX:
                self._valid.clear()
            self._valid.add(key)
        return error


def _experiment_index(name: str) -> tuple[int, str]:
    match = _EXPERIMENT_KEY.fullmatch(name)
    return (int(match[1]) if match else -1, name)


def _groups(gate: Gate) -> str:
    groups = [str(list(group)) for group in gate.coupling_map or ()]
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + " or " + groups[-1]


def _where(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            safe = part if _EXPERIMENT_KEY.fullmatch(part) or part in _EXPERIMENT_KEYS else None
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
