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

each failure raising :class:`JobRejected` with a message that says what is wrong and where
(:mod:`spooler.pipeline.refusals`), e.g.
``experiment_1.instructions[3]: parameter 7.1 of rlx is above the maximum 6.2832``.
The job id (from the file name) is checked before all of this, by the intake.

Admitting a job at the limits must stay cheap (issue 19): jsonschema builds each validator
once, the schema is applied in two steps (:mod:`spooler.pipeline.schemaparts`), and an
instruction of the plain shape the schema describes (lists of ints and numbers within their
bounds) is accepted by a compiled check that accepts nothing the schema refuses
(:mod:`spooler.pipeline.plaininstruction`); every other instruction goes to jsonschema,
which decides and says why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from spooler.core.backends import Backend, Gate
from spooler.core.errors import JobRejected
from spooler.core.model import Experiment, Instruction, Job
from spooler.core.settings import Limits
from spooler.core.strictjson import describe_value, loads_strict
from spooler.pipeline.refusals import EXPERIMENT_KEY, Refusals
from spooler.pipeline.schemaparts import SchemaParts
from spooler.pipeline.semantics import check_experiment, check_experiment_names

__all__ = ["JobValidator"]


class JobValidator:
    """Validates job files for one backend under the configured limits."""

    def __init__(self, backend: Backend, limits: Limits) -> None:
        self.backend = backend
        self.limits = limits
        # instructions per experiment: the machine's limit, or the configured one if lower
        self.max_instructions = backend.instruction_limit(limits.instructions_per_experiment_max)
        self._refusals = Refusals(backend, self.max_instructions)

    @cached_property
    def schema(self) -> dict[str, Any]:
        return self.backend.json_schema(self.limits.instructions_per_experiment_max)

    @cached_property
    def _schema_validator(self) -> jsonschema.Draft202012Validator:
        """The whole schema in one validator: the reference the fast path is tested against."""
        jsonschema.Draft202012Validator.check_schema(self.schema)
        return jsonschema.Draft202012Validator(self.schema)

    @cached_property
    def _parts(self) -> SchemaParts:
        return SchemaParts(self.schema)

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
        """Size, schema (applied in two parts, see :class:`SchemaParts`), then semantics."""
        self._check_size(document)
        error = best_match(self._parts.skeleton.iter_errors(document))
        if error is not None:
            raise JobRejected(self._refusals.describe(error, document))
        instruction_error = self._parts.instruction_error
        for name, experiment in document.items():
            for index, item in enumerate(experiment["instructions"]):
                error = instruction_error(item)
                if error is not None:
                    error.path.extendleft(reversed((name, "instructions", index)))
                    raise JobRejected(self._refusals.describe(error, document))
        return self._semantic(document)

    def _check_size(self, document: Any) -> None:
        """Refuse a job with more experiments, or an experiment with more instructions, than
        the machine takes: before anything looks at each instruction. Anything else about
        the document is left to the later checks (it need not even be a job here)."""
        if not isinstance(document, dict):
            return
        if len(document) > self.backend.max_experiments:
            raise JobRejected(self._refusals.too_many_experiments(len(document)))
        for name, experiment in document.items():
            if isinstance(experiment, dict):
                instructions = experiment.get("instructions")
                if isinstance(instructions, list) and len(instructions) > self.max_instructions:
                    raise JobRejected(
                        self._refusals.too_many_instructions(
                            [name, "instructions"], len(instructions)
                        )
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
        if EXPERIMENT_KEY.fullmatch(name) is None:
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


def _quick_parse(data: bytes) -> Any:
    """The document as Python's C parser reads it, for the size check only (the strict reader
    comes after it); None when it does not parse (the strict reader will say why)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _experiment_index(name: str) -> tuple[int, str]:
    match = EXPERIMENT_KEY.fullmatch(name)
    return (int(match[1]) if match else -1, name)


def _groups(gate: Gate) -> str:
    groups = [str(list(group)) for group in gate.coupling_map or ()]
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + " or " + groups[-1]
