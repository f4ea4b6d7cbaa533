"""The compiled check of plain instructions accepts nothing its gate's schema refuses, and
accepts the instructions clients send (so that jsonschema is left for the refusals)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spooler.core.backends import BACKENDS
from spooler.core.settings import Limits
from spooler.pipeline.plaininstruction import PlainInstruction
from spooler.pipeline.validation import JobValidator
from tests.pipeline.test_render_properties import instruction
from tests.pipeline.test_validation_equivalence import INSTRUCTION

VALIDATORS = {name: JobValidator(b, Limits()) for name, b in BACKENDS.items()}
NAMES = sorted(BACKENDS)
# near the bounds: integral floats, wires as floats, bools, values just outside
EDGES = st.sampled_from([0, 1, -1, 0.0, 1.0, 2.0, 0.5, 6.2832, 6.283185307179586, 62.9, 500])
EDGES |= st.sampled_from([500.0, 501, 499.5, True, False, 3, 4, 4.0, 7, 8, 1e300, -0.0])
EDGY = st.tuples(
    st.sampled_from(sorted({g for b in BACKENDS.values() for g in b.gates})),
    st.lists(EDGES, max_size=9),
    st.lists(EDGES, max_size=3),
).map(list)


def _plain_verdict(name: str, item: Any) -> bool:
    parts = VALIDATORS[name]._parts
    if not (isinstance(item, list) and len(item) == 3 and type(item[0]) is str):
        return False
    check = parts.plain.get(item[0])
    return check is not None and check.accepts(item)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(NAMES), INSTRUCTION | EDGY)
def test_what_the_check_accepts_the_schema_accepts(name: str, item: Any) -> None:
    if _plain_verdict(name, item):
        assert VALIDATORS[name]._parts.for_instruction(item).is_valid(item)
    # and the two-step verdict is the schema's either way
    error = VALIDATORS[name]._parts.instruction_error(item)
    assert (error is None) == VALIDATORS[name]._parts.for_instruction(item).is_valid(item)


@st.composite
def client_instruction(draw: st.DrawFn) -> tuple[str, list[Any]]:
    name = draw(st.sampled_from(NAMES))
    backend = BACKENDS[name]
    return name, draw(instruction(backend, backend.num_wires))


@settings(max_examples=500, deadline=None)
@given(client_instruction())
def test_the_clients_instructions_need_no_jsonschema(case: tuple[str, list[Any]]) -> None:
    name, item = case
    assert _plain_verdict(name, item), item


def test_every_gate_of_every_machine_has_the_check() -> None:
    for name, validator in VALIDATORS.items():
        assert set(validator._parts.plain) == set(BACKENDS[name].gates)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["prefixItems"][1].update(uniqueItems=True),
        lambda s: s["prefixItems"][1]["items"].update(exclusiveMaximum=3),
        lambda s: s["prefixItems"][2]["prefixItems"][0].update(multipleOf=0.5),
        lambda s: s["prefixItems"][2]["prefixItems"][0].update(type="integer"),
        lambda s: s.update(items=True),
        lambda s: s["prefixItems"].append({}),
        lambda s: s["prefixItems"][0].update(const=1),
    ],
)
def test_a_schema_of_another_shape_gets_no_check(change: Any) -> None:
    """jsonschema then decides every instruction of that gate: a change of the schema never
    makes the check accept more than the schema."""
    backend = BACKENDS["singlequdit"]
    schema = backend.instruction_schema(backend.gates["load"])
    assert PlainInstruction.compile(schema) is not None
    changed = copy.deepcopy(schema)
    change(changed)
    assert PlainInstruction.compile(changed) is None
