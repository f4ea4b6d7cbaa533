from __future__ import annotations

import json
from typing import Any

import pytest

from spooler.core.backends import get_backend
from spooler.core.errors import JobRejected
from spooler.core.model import Job
from spooler.core.settings import Limits
from spooler.pipeline.validation import JobValidator


def validate(backend: str, document: Any, **limits: int) -> Job:
    return JobValidator(get_backend(backend), Limits(**limits)).validate_bytes(
        json.dumps(document).encode()
    )


def experiment(
    *instructions: list[Any], num_wires: int = 1, shots: int = 2, **extra: Any
) -> dict[str, Any]:
    return {
        "experiment_0": {
            "instructions": list(instructions),
            "num_wires": num_wires,
            "shots": shots,
            **extra,
        }
    }


def test_a_client_job_becomes_a_typed_job() -> None:
    job = validate(
        "singlequdit",
        {
            "experiment_1": {
                "instructions": [["load", [0], [20.0]], ["measure", [0], []]],
                "num_wires": 1,
                "shots": 4,
                "seed": 7,
            },
            "experiment_0": {
                "instructions": [["rlx", [0], [3]]],
                "num_wires": 1,
                "shots": 2,
                "wire_order": "sequential",
            },
        },
    )
    assert [e.name for e in job.experiments] == ["experiment_0", "experiment_1"]
    first, second = job.experiments
    assert first.instructions[0].params == (3.0,) and type(first.instructions[0].params[0]) is float
    assert second.seed == 7 and second.wire_order == "sequential"
    assert second.measured_wires == (0,)
    assert job.total_shots == 6


def test_experiments_sort_numerically() -> None:
    order = (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)
    doc = {f"experiment_{i}": {"instructions": [], "num_wires": 1, "shots": 1} for i in order}
    names = [e.name for e in validate("singlequdit", doc).experiments]
    assert names == [f"experiment_{i}" for i in range(11)]


def test_a_job_without_measure_is_valid_and_measures_no_wire() -> None:
    job = validate("singlequdit", experiment(["load", [0], [5]], ["rlx", [0], [1.0]]))
    assert job.experiments[0].measured_wires == ()


def test_fermions_default_to_interleaved() -> None:
    job = validate(
        "fermions",
        experiment(
            ["load", [0], []],
            ["fhop", [2, 3, 4, 5], [0.5]],
            ["fint", list(range(8)), [1.0]],
            ["fphase", [6, 7], [0.1]],
            ["measure", [7], []],
            num_wires=8,
        ),
    )
    assert job.experiments[0].wire_order == "interleaved"


@pytest.mark.parametrize(
    ("backend", "doc", "message"),
    [
        (
            "multiqudit",
            experiment(["rlxly", [0, 2], [1.0]], num_wires=4),
            "experiment_0.instructions[0]: "
            "rlxly may act on [0, 1], [1, 2] or [2, 3], not on [0, 2]",
        ),
        ("multiqudit", experiment(["rlzlz", [1, 0], [1.0]], num_wires=4), "not on [1, 0]"),
        (
            "multiqudit",
            experiment(["barrier", [1, 1], []], num_wires=4),
            "the wires of barrier must be distinct, got [1, 1]",
        ),
        (
            "multiqudit",
            experiment(["rlx", [3], [1.0]], num_wires=2),
            "wire 3 of rlx is outside the experiment's num_wires 2 (wires 0 to 1)",
        ),
        (
            "fermions",
            experiment(["fhop", [1, 2, 3, 4], [1.0]], num_wires=8),
            "fhop may act on [0, 1, 2, 3], [2, 3, 4, 5] or [4, 5, 6, 7], not on [1, 2, 3, 4]",
        ),
        (
            "fermions",
            experiment(["fint", [0, 1], [1.0]], num_wires=8),
            "fint acts on 8 wire(s), got 2",
        ),
        (
            "fermions",
            experiment(["fphase", [1, 2], [1.0]], num_wires=8),
            "fphase may act on [0, 1], [2, 3]",
        ),
        (
            "fermions",
            experiment(["load", [0], [1.0]], num_wires=8),
            "load takes 0 parameter(s), got 1",
        ),
        (
            "nali",
            experiment(["rlx", [0], [1.0]], num_wires=5),
            "unknown gate 'rlx'; nali knows barrier, measure, rLx",
        ),
        (
            "nali",
            {f"experiment_{i}": {"instructions": [], "num_wires": 1, "shots": 1} for i in range(4)},
            "the job has 4 experiments; nali takes at most 3",
        ),
        ("nali", experiment(shots=61), "61 shots is above nali's maximum of 60"),
        (
            "nali",
            experiment(["rLz2", [4], [63]], num_wires=5),
            "parameter 63 of rLz2 is above the maximum 62.832",
        ),
    ],
)
def test_semantic_and_schema_messages(backend: str, doc: Any, message: str) -> None:
    with pytest.raises(JobRejected) as caught:
        validate(backend, doc)
    assert message in str(caught.value)


def test_instruction_limit_is_configurable() -> None:
    doc = experiment(*[["rlz", [0], [0.1]]] * 11)
    validate("singlequdit", doc, instructions_per_experiment_max=11)
    with pytest.raises(JobRejected, match="11 instructions is above the limit of 10"):
        validate("singlequdit", doc, instructions_per_experiment_max=10)


def test_size_limit_is_configurable() -> None:
    with pytest.raises(JobRejected, match="more than the limit of 100 bytes"):
        validate("singlequdit", experiment(*[["rlz", [0], [0.1]]] * 10), job_file_max_bytes=100)
