"""The machines labspool can serve, each defined once.

A backend is a gate set (per gate: how many wires, the parameters with their bounds, the
wire groups it may act on, and the apparatus method it becomes) and limits: shots per
experiment, experiments per job, and instructions per experiment (``max_instructions``: a
real sequence has tens of gates, and the limit bounds the work of admitting a job). Both
the JSON schema that a job is validated against (:meth:`Backend.json_schema`) and the
checks that a schema cannot express (:mod:`spooler.pipeline.validation`) are derived from this one
definition.

The gate sets follow the public cold-atom simulators and the qiskit-cold-atom client.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BACKENDS", "Backend", "Gate", "Param", "get_backend"]

TWO_PI = 2 * math.pi
EXPERIMENT_KEY_PATTERN = r"^experiment_(0|[1-9][0-9]*)$"
WIRE_ORDERS = ("sequential", "interleaved")
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class Param:
    """One real parameter of a gate, with inclusive bounds."""

    name: str
    minimum: float
    maximum: float
    integral: bool = False


@dataclass(frozen=True)
class Gate:
    """One instruction a job may use.

    ``wires`` is the exact number of wires, or ``None`` for any number of distinct wires
    (``barrier``). ``coupling_map`` lists the wire groups the gate may act on; ``None`` means
    any group of distinct wires within the experiment.
    """

    name: str
    method: str
    wires: int | None = 1
    params: tuple[Param, ...] = ()
    coupling_map: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if not self.method.isidentifier() or keyword.iskeyword(self.method):
            raise ValueError(f"gate {self.name}: method {self.method!r} is not an identifier")


@dataclass(frozen=True)
class Backend:
    """One machine: its gates and its limits (``max_instructions`` is per experiment)."""

    name: str
    display_name: str
    description: str
    num_wires: int
    gates: Mapping[str, Gate]
    max_shots: int
    max_experiments: int
    max_instructions: int
    wire_orders: tuple[str, ...] = WIRE_ORDERS
    default_wire_order: str = "sequential"
    version: str = "0.0.1"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def json_schema(self, max_instructions: int | None = None) -> dict[str, Any]:
        """The JSON schema (draft 2020-12) of a job for this machine; *max_instructions* (a
        configured limit) can only lower the machine's own ``max_instructions``."""
        most = self.instruction_limit(max_instructions)
        names = sorted(self.gates)
        wire = {"type": "integer", "minimum": 0, "maximum": self.num_wires - 1}
        instruction: dict[str, Any] = {
            "type": "array",
            "minItems": 3,
            "prefixItems": [
                {"type": "string", "enum": names},
                {"type": "array", "items": wire, "minItems": 1, "maxItems": self.num_wires},
                {"type": "array", "items": {"type": "number"}},
            ],
            "items": False,
            "allOf": [
                {"if": {"prefixItems": [{"const": name}]}, "then": self.instruction_schema(gate)}
                for name, gate in sorted(self.gates.items())
            ],
        }
        experiment = {
            "type": "object",
            "additionalProperties": False,
            "required": ["instructions", "num_wires", "shots"],
            "properties": {
                "instructions": {
                    "type": "array",
                    "maxItems": most,
                    "items": instruction,
                },
                "num_wires": {"type": "integer", "minimum": 1, "maximum": self.num_wires},
                "shots": {"type": "integer", "minimum": 1, "maximum": self.max_shots},
                "wire_order": {"enum": list(self.wire_orders)},
                "seed": {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
            },
        }
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://labspool.invalid/schemas/job-{self.name}.schema.json",
            "title": f"A job for the {self.display_name} backend ({self.name})",
            "type": "object",
            "minProperties": 1,
            "maxProperties": self.max_experiments,
            "propertyNames": {"pattern": EXPERIMENT_KEY_PATTERN},
            "additionalProperties": experiment,
        }

    def instruction_limit(self, configured: int | None = None) -> int:
        """Instructions an experiment may have: the machine's limit, or a lower *configured*."""
        return (
            self.max_instructions if configured is None else min(configured, self.max_instructions)
        )

    def instruction_schema(self, gate: Gate) -> dict[str, Any]:
        """The complete schema of one instruction of *gate* (it implies the generic shape)."""
        return {
            "type": "array",
            "minItems": 3,
            "prefixItems": [{"const": gate.name}, self._wires_schema(gate), _params_schema(gate)],
            "items": False,
        }

    def _wires_schema(self, gate: Gate) -> dict[str, Any]:
        wire = {"type": "integer", "minimum": 0, "maximum": self.num_wires - 1}
        count = (1, self.num_wires) if gate.wires is None else (gate.wires, gate.wires)
        return {"type": "array", "items": wire, "minItems": count[0], "maxItems": count[1]}


def _params_schema(gate: Gate) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for param in gate.params:
        item: dict[str, Any] = {
            "type": "number",
            "minimum": param.minimum,
            "maximum": param.maximum,
        }
        if param.integral:
            item["multipleOf"] = 1
        items.append(item)
    schema: dict[str, Any] = {"type": "array", "minItems": len(items), "maxItems": len(items)}
    if items:
        schema["prefixItems"] = items
    schema["items"] = False
    return schema


# The machines' instructions per experiment: a real sequence has tens of gates (the client's
# longest example job has 23), and admitting a job costs time per instruction (checking,
# rendering, parsing the rendered file back), so the limit keeps a job of the most
# experiments at the limit well under 0.2 s of the spooler's CPU (scripts/bench_intake.py):
# 200 on the spin machines, 100 on fermions (an 8-wire instruction costs about twice as much).


def _angle(maximum: float = TWO_PI) -> tuple[Param, ...]:
    return (Param("theta", 0.0, maximum),)


def _single_wire_map(num_wires: int) -> tuple[tuple[int, ...], ...]:
    return tuple((w,) for w in range(num_wires))


def _spin_gates(num_wires: int, *, capitalised: bool = False) -> dict[str, Gate]:
    one = _single_wire_map(num_wires)
    x, z, z2 = ("rLx", "rLz", "rLz2") if capitalised else ("rlx", "rlz", "rlz2")
    return {
        x: Gate(x, x, 1, _angle(), one),
        z: Gate(z, z, 1, _angle(), one),
        z2: Gate(z2, z2, 1, _angle(10 * TWO_PI), one),
        "measure": Gate("measure", "measure", 1, (), one),
        "barrier": Gate("barrier", "barrier", None),
    }


def _singlequdit() -> Backend:
    gates = _spin_gates(1)
    gates["load"] = Gate("load", "load", 1, (Param("atoms", 1, 500, integral=True),), ((0,),))
    return Backend(
        name="singlequdit",
        display_name="SingleQudit",
        description="One large spin of up to 500 atoms (Rabi rotations, Larmor and squeezing).",
        num_wires=1,
        gates=gates,
        max_shots=1000,
        max_experiments=15,
        max_instructions=200,
    )


def _multiqudit() -> Backend:
    wires = 4
    gates = _spin_gates(wires)
    gates["load"] = Gate(
        "load", "load", 1, (Param("atoms", 1, 500, integral=True),), _single_wire_map(wires)
    )
    pairs = tuple((w, w + 1) for w in range(wires - 1))
    gates["rlxly"] = Gate("rlxly", "rlxly", 2, _angle(10 * TWO_PI), pairs)
    gates["rlzlz"] = Gate("rlzlz", "rlzlz", 2, _angle(10 * TWO_PI), pairs)
    return Backend(
        name="multiqudit",
        display_name="MultiQudit",
        description="Four large spins with flip-flop (rlxly) and Ising (rlzlz) couplings.",
        num_wires=wires,
        gates=gates,
        max_shots=1000,
        max_experiments=15,
        max_instructions=200,
    )


def _fermions() -> Backend:
    wires = 8
    one = _single_wire_map(wires)
    gates = {
        "load": Gate("load", "load", 1, (), one),
        "measure": Gate("measure", "measure", 1, (), one),
        "barrier": Gate("barrier", "barrier", None),
        "fhop": Gate("fhop", "fhop", 4, _angle(), ((0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7))),
        "fint": Gate("fint", "fint", 8, _angle(), (tuple(range(wires)),)),
        "fphase": Gate("fphase", "fphase", 2, _angle(), ((0, 1), (2, 3), (4, 5), (6, 7))),
    }
    return Backend(
        name="fermions",
        display_name="Fermions",
        description="Fermions of two spin states in four tweezers (wires interleaved by spin).",
        num_wires=wires,
        gates=gates,
        max_shots=1000,
        max_experiments=15,
        max_instructions=100,
        default_wire_order="interleaved",
    )


def _nali() -> Backend:
    return Backend(
        name="nali",
        display_name="NaLi",
        description="The original labscript machine: a sodium-lithium mixture, five spins.",
        num_wires=5,
        gates=_spin_gates(5, capitalised=True),
        max_shots=60,
        max_experiments=3,
        max_instructions=200,
    )


BACKENDS: Mapping[str, Backend] = {
    b.name: b for b in (_singlequdit(), _multiqudit(), _fermions(), _nali())
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
