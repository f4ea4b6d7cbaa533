"""The two-step schema validation gives exactly the whole schema's verdict."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spooler.core.backends import BACKENDS
from spooler.core.errors import JobRejected
from spooler.core.settings import Limits
from spooler.pipeline.validation import JobValidator
from tests.pipeline.test_render_properties import valid_job

VALIDATORS = {
    name: JobValidator(b, Limits(instructions_per_experiment_max=20))
    for name, b in BACKENDS.items()
}

GATE_NAMES = sorted({g for b in BACKENDS.values() for g in b.gates} | {"RLX", "", "x"})
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-3, 1000)
    | st.floats(-1, 70, allow_nan=False)
    | st.text(max_size=3)
)
NUMBERS = st.lists(st.integers(-1, 9) | st.floats(-1, 70, allow_nan=False) | SCALAR, max_size=9)
INSTRUCTION = st.one_of(
    st.tuples(st.sampled_from(GATE_NAMES), NUMBERS, NUMBERS).map(list),
    st.lists(SCALAR | st.sampled_from(GATE_NAMES) | NUMBERS, max_size=4),
    SCALAR,
)
EXPERIMENT = st.fixed_dictionaries(
    {"instructions": st.lists(INSTRUCTION, max_size=5) | SCALAR},
    optional={
        "num_wires": st.integers(-1, 9) | SCALAR,
        "shots": st.integers(0, 1001) | SCALAR,
        "wire_order": st.sampled_from(["sequential", "interleaved", "x"]),
        "seed": st.integers(-1, 5) | SCALAR,
        "extra": SCALAR,
    },
)
DOCUMENT = (
    st.dictionaries(
        st.sampled_from(["experiment_0", "experiment_1", "experiment_01", "x"]),
        EXPERIMENT | SCALAR,
        max_size=3,
    )
    | st.lists(EXPERIMENT, max_size=1)
    | SCALAR
)


def _two_step(validator: JobValidator, document: Any) -> bool:
    """The schema part only: a semantic refusal after a passed schema still counts as valid."""
    try:
        validator.validate_document(document)
    except JobRejected as exc:
        return not _is_schema_refusal(validator, document, exc)
    return True


def _is_schema_refusal(validator: JobValidator, document: Any, exc: JobRejected) -> bool:
    parts = validator._parts
    if not parts.skeleton.is_valid(document):
        return True
    return any(
        not parts.for_instruction(item).is_valid(item)
        for experiment in document.values()
        for item in experiment["instructions"]
    )


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(BACKENDS)), DOCUMENT)
def test_random_documents_get_the_whole_schemas_verdict(backend: str, document: Any) -> None:
    validator = VALIDATORS[backend]
    assert _two_step(validator, document) == validator.schema_verdict(document)


@settings(max_examples=100, deadline=None)
@given(valid_job())
def test_valid_jobs_pass_both_ways(case: tuple[str, dict[str, Any]]) -> None:
    backend, document = case
    validator = JobValidator(BACKENDS[backend], Limits())
    assert validator.schema_verdict(document)
    validator.validate_bytes(json.dumps(document).encode())
