"""Validation of untrusted job files, in a fixed order.

0. the size of the job: at most the backend's experiments, and at most its (or the
   configured, if lower) instructions per experiment, counted on a quick parse before any
   per-instruction work, so that an oversized job costs little to refuse,
1. strict JSON (UTF-8, finite numbers, no duplicate keys, bounded depth and size),
2. the backend's JSON schema (jsonschema, draft 2020-12),
3. the checks a schema cannot express (experiment names, wires within the experiment's
   ``num_wires``, distinct wires, the coupling map), then what the machine's physics
   forbids (:mod:`spooler.pipeline.semantics`: the names without gaps, the machine's wire order, a
   wire loaded once and left alone once measured, the virtual machine's size),

each failure raising :class:`JobRejected` with a message that says what is wrong and where,
e.g. ``experiment_1.instructions[3]: parameter 7.1 of rlx is above the maximum 6.2832``.
The job id (from the file name) is checked before all of this, by the intake.

Admitting a job at the limits must stay cheap (issue 19): jsonschema builds each validator
once, and an instruction of the plain shape the schema describes (lists of ints and numbers
within their bounds) is accepted by a compiled check that accepts nothing the schema
refuses (:class:`_PlainInstruction`); every other instruction goes to jsonschema, which
decides and says why.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from spooler.core.backends import EXPERIMENT_KEY_PATTERN, Backend, Gate
from spooler.core.errors import JobRejected
from spooler.core.model import Experiment, Instruction, Job
from spooler.core.settings import Limits
from spooler.core.strictjson import describe_value, loads_strict
from spooler.pipeline.semantics import check_experiment, check_experiment_names

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
        # instructions per experiment: the machine's limit, or the configured one if lower
        self.max_instructions = backend.instruction_limit(limits.instructions_per_experiment_max)

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

    @cached_property
    def _coupled(self) -> dict[str, dict[tuple[int, ...], int]]:
        """Per gate with a coupling map of distinct wires: each allowed group -> its top wire
        (an instruction on one of them passes the checks of :meth:`_instruction` at once)."""
        return {
            name: {group: max(group) for group in gate.coupling_map}
            for name, gate in self.backend.gates.items()
            if gate.coupling_map
            and all(group and len(set(group)) == len(group) for group in gate.coupling_map)
        }

    def prepare(self) -> None:
        """Build (and check) the schema now, so that a broken one stops the daemon at start."""
        _ = self._schema_validator, self._parts, self._coupled

    def validate_bytes(self, data: bytes) -> Job:
        if len(data) > self.limits.job_file_max_bytes:
            raise JobRejected(
                f"the job file has {len(data)} bytes, more than the limit of "
                f"{self.limits.job_file_max_bytes} bytes"
            )
        self._check_size(_quick_parse(data))
        return self.validate_document(loads_strict(data, max_depth=self.limits.json_depth_max))

    def validate_document(self, document: Any) -> Job:
        """Size, schema (applied in two parts, see :class:`_SchemaParts`), then semantics."""
        self._check_size(document)
        error = best_match(self._parts.skeleton.iter_errors(document))
        if error is not None:
            raise JobRejected(self._describe(error, document))
        instruction_error = self._parts.instruction_error
        for name, experiment in document.items():
            for index, item in enumerate(experiment["instructions"]):
                error = instruction_error(item)
                if error is not None:
                    error.path.extendleft(reversed((name, "instructions", index)))
                    raise JobRejected(self._describe(error, document))
        return self._semantic(document)

    def _check_size(self, document: Any) -> None:
        """Refuse a job with more experiments, or an experiment with more instructions, than
        the machine takes: before anything looks at each instruction. Anything else about
        the document is left to the later checks (it need not even be a job here)."""
        if not isinstance(document, dict):
            return
        if len(document) > self.backend.max_experiments:
            raise JobRejected(self._too_many_experiments(len(document)))
        for name, experiment in document.items():
            if isinstance(experiment, dict):
                instructions = experiment.get("instructions")
                if isinstance(instructions, list) and len(instructions) > self.max_instructions:
                    raise JobRejected(
                        self._too_many_instructions([name, "instructions"], len(instructions))
                    )

    def _too_many_experiments(self, count: int) -> str:
        return (
            f"the job has {count} experiments; {self.backend.name} takes at most "
            f"{self.backend.max_experiments}"
        )

    def _too_many_instructions(self, path: Sequence[Any], count: int) -> str:
        return (
            f"{_where(path)}: {count} instructions is above the limit of "
            f"{self.max_instructions} per experiment on {self.backend.name}"
        )

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
        gates, coupled = self.backend.gates, self._coupled
        instructions = []
        for index, item in enumerate(raw["instructions"]):
            gate_name, raw_wires, raw_params = item
            wires = tuple(map(int, raw_wires))
            top = coupled[gate_name].get(wires, num_wires) if gate_name in coupled else num_wires
            if top < num_wires:  # an allowed group within the experiment's wires
                instructions.append(Instruction(gate_name, wires, tuple(map(float, raw_params))))
            else:
                where = f"{name}.instructions[{index}]"
                gate = gates[gate_name]
                instructions.append(self._instruction(where, gate, wires, raw_params, num_wires))
        seed = raw.get("seed")
        return Experiment(
            name=name,
            instructions=tuple(instructions),
            num_wires=num_wires,
            shots=int(raw["shots"]),
            wire_order=raw.get("wire_order", self.backend.default_wire_order),
            seed=None if seed is None else int(seed),
        )

    @staticmethod
    def _instruction(
        where: str, gate: Gate, wires: tuple[int, ...], raw_params: Sequence[Any], num_wires: int
    ) -> Instruction:
        name = gate.name
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
        return Instruction(name, wires, tuple(map(float, raw_params)))

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
                return self._too_many_experiments(len(document))
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
                return self._too_many_instructions(path, len(value))
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
    ``base``, so the verdict is the same; tests/pipeline/test_validation_equivalence.py holds it to
    that. An instruction of the plain shape is accepted by ``S_g``'s compiled check
    (:class:`_PlainInstruction`, which accepts nothing ``S_g`` refuses); jsonschema decides
    every other one.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        skeleton = copy.deepcopy(schema)
        instructions = skeleton["additionalProperties"]["properties"]["instructions"]
        instruction = instructions.pop("items")  # open: not even walked
        branches = instruction.pop("allOf")
        base = instruction
        cls = jsonschema.Draft202012Validator
        self.skeleton = cls(skeleton)
        self.base = cls(base)
        self.by_gate = {
            branch["if"]["prefixItems"][0]["const"]: cls(branch["then"]) for branch in branches
        }
        self.plain: dict[str, _PlainInstruction] = {}
        for branch in branches:
            check = _PlainInstruction.compile(branch["then"])
            if check is not None:
                self.plain[check.name] = check

    def for_instruction(self, item: Any) -> jsonschema.Draft202012Validator:
        if isinstance(item, list) and item and isinstance(item[0], str):
            return self.by_gate.get(item[0], self.base)
        return self.base

    def instruction_error(self, item: Any) -> ValidationError | None:
        if type(item) is list and len(item) == 3 and type(item[0]) is str:
            check = self.plain.get(item[0])
            if check is not None and check.accepts(item):
                return None
        error: ValidationError | None = best_match(self.for_instruction(item).iter_errors(item))
        return error


class _PlainInstruction:
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
    def compile(cls, schema: Mapping[str, Any]) -> _PlainInstruction | None:
        try:
            return cls._compile(schema)
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def _compile(cls, schema: Mapping[str, Any]) -> _PlainInstruction | None:
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


def _quick_parse(data: bytes) -> Any:
    """The document as Python's C parser reads it, for the size check only (the strict reader
    comes after it); None when it does not parse (the strict reader will say why)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


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
