"""The backend's job schema applied in two steps: the job's skeleton, then each instruction
against its own gate's schema only, with exactly the whole schema's verdict.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from spooler.pipeline.plaininstruction import PlainInstruction

__all__ = ["SchemaParts"]


class SchemaParts:
    """The backend's job schema applied in two steps, with exactly the whole schema's verdict.

    The schema checks each instruction with ``base ∧ allOf: [if name == g then S_g, ...]``
    over all gates g, and jsonschema evaluates every ``if`` for every instruction. Here the
    job is first validated with the instruction items left open (the skeleton), then each
    instruction against ``S_g`` for its own gate g (or ``base`` when its name is no gate,
    which ``base`` refuses). Only g's ``if`` can hold for an array whose first item is g,
    and ``S_g`` (a complete instruction schema, :meth:`Backend.instruction_schema`) implies
    ``base``, so the verdict is the same; tests/pipeline/test_validation_equivalence.py holds it to
    that. An instruction of the plain shape is accepted by ``S_g``'s compiled check
    (:class:`PlainInstruction`, which accepts nothing ``S_g`` refuses); jsonschema decides
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
        self.plain: dict[str, PlainInstruction] = {}
        for branch in branches:
            check = PlainInstruction.compile(branch["then"])
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
