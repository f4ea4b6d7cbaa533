"""What the machines' physics forbids: each refusal with its message, and what stays allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spooler.core.backends import get_backend
from spooler.core.errors import JobRejected
from spooler.core.settings import Limits
from spooler.pipeline.validation import JobValidator
from spooler.virtual.spins import STATES_MAX


def validate(backend: str, document: dict[str, Any], **limits: Any) -> Any:
    validator = JobValidator(get_backend(backend), Limits(**limits))
    return validator.validate_bytes(json.dumps(document).encode())


def experiment(*instructions: list[Any], num_wires: int = 1, **extra: Any) -> dict[str, Any]:
    return {"instructions": list(instructions), "num_wires": num_wires, "shots": 3, **extra}


HOP = [
    ["load", [0], []],
    ["load", [3], []],
    ["fhop", [0, 1, 2, 3], [0.7]],
    ["measure", [0], []],
    ["measure", [2], []],
]


def test_a_fermions_job_in_the_machines_order_is_accepted() -> None:
    job = validate("fermions", {"experiment_0": experiment(*HOP, num_wires=4)})
    assert job.experiments[0].wire_order == "interleaved"
    job = validate(
        "fermions", {"experiment_0": experiment(*HOP, num_wires=4, wire_order="interleaved")}
    )
    assert job.experiments[0].measured_wires == (0, 2)


@pytest.mark.parametrize(
    ("backend", "document", "message"),
    [
        (
            "fermions",
            {"experiment_0": experiment(*HOP, num_wires=4, wire_order="sequential")},
            "experiment_0: wire_order 'sequential' is not this machine's: fermions numbers its "
            "wires interleaved (wire 2 i is site i spin up, 2 i + 1 site i spin down)",
        ),
        (
            "fermions",
            {"experiment_0": experiment(["load", [1], []], ["load", [1], []], num_wires=2)},
            "experiment_0.instructions[1]: mode 1 is loaded twice: a fermionic mode holds at "
            "most one fermion (Pauli's exclusion)",
        ),
        (
            "singlequdit",
            {"experiment_99999999999999999999": experiment(["load", [0], [5]])},
            "experiments must be numbered experiment_0 to experiment_0 without gaps; "
            "experiment_0 is missing (the job has experiment_99999999999999999999)",
        ),
        (
            "singlequdit",
            {"experiment_0": experiment(), "experiment_2": experiment()},
            "experiment_1 is missing (the job has experiment_2)",
        ),
        (
            "multiqudit",
            {"experiment_0": experiment(["load", [0], [5]], ["load", [0], [5]])},
            "experiment_0.instructions[1]: wire 0 is loaded twice",
        ),
        (
            "singlequdit",
            {
                "experiment_0": experiment(
                    ["load", [0], [5]], ["measure", [0], []], ["rlx", [0], [1.0]]
                )
            },
            "experiment_0.instructions[2]: rlx acts on wire 0 after it was measured",
        ),
        (
            "nali",
            {"experiment_0": experiment(["measure", [0], []], ["measure", [0], []])},
            "experiment_0.instructions[1]: measure acts on wire 0 after it was measured",
        ),
        (
            "multiqudit",
            {"experiment_0": experiment(wire_order="interleaved")},
            "multiqudit numbers its wires sequential",
        ),
    ],
)
def test_what_the_physics_forbids_is_refused_with_its_reason(
    backend: str, document: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobRejected) as refused:
        validate(backend, document)
    assert message in str(refused.value)


def test_a_job_too_large_for_the_virtual_machine_is_refused_with_the_limit() -> None:
    loads = [["load", [w], [500]] for w in range(4)]
    document = {"experiment_0": experiment(*loads, num_wires=4)}
    with pytest.raises(JobRejected) as refused:
        validate("multiqudit", document, exact_states_max=STATES_MAX)
    message = str(refused.value)
    assert "too large to simulate exactly" in message
    assert "63,001,502,001 states" in message  # 501 ** 4
    assert f"virtual machine's limit of {STATES_MAX:,}" in message
    validate("multiqudit", document)  # a real machine: no limit
    fits = [["load", [w], [15]] for w in range(4)]  # 16 ** 4 = 65536
    validate(
        "multiqudit", {"experiment_0": experiment(*fits, num_wires=4)}, exact_states_max=STATES_MAX
    )
