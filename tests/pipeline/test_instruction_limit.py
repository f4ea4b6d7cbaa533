"""Each machine's instructions per experiment (issue 19): served to the client, checked before
any instruction is looked at, and a job at the limits accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spooler.core.backends import BACKENDS, Backend
from spooler.core.errors import JobRejected
from spooler.core.jobs import Jobs
from spooler.core.settings import Limits, Settings
from spooler.core.states import JobState
from spooler.pipeline import validation
from spooler.pipeline.daemon import Spooler
from spooler.pipeline.validation import JobValidator
from tests.conftest import drop

NAMES = sorted(BACKENDS)
# one valid instruction per machine, on its first wires
GATE = {
    "singlequdit": ["rlx", [0], [0.5]],
    "multiqudit": ["rlxly", [0, 1], [0.5]],
    "fermions": ["fphase", [0, 1], [0.5]],
    "nali": ["rLx", [0], [0.5]],
}


def job(backend: Backend, *counts: int) -> dict[str, Any]:
    """A valid job of len(counts) experiments, experiment i with counts[i] instructions."""
    return {
        f"experiment_{i}": {
            "instructions": [GATE[backend.name]] * count,
            "num_wires": backend.num_wires,
            "shots": 1,
            "wire_order": backend.default_wire_order,
        }
        for i, count in enumerate(counts)
    }


def over_limit_message(backend: Backend, experiment: int, count: int, limit: int) -> str:
    return (
        f"experiment_{experiment}.instructions: {count} instructions is above the limit of "
        f"{limit} per experiment on {backend.name}"
    )


def test_every_machine_has_a_limit_of_a_few_hundred_at_most() -> None:
    assert {name: b.max_instructions for name, b in BACKENDS.items()} == {
        "singlequdit": 200,
        "multiqudit": 200,
        "fermions": 100,
        "nali": 200,
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_schema_says_the_machines_limit(name: str) -> None:
    backend = BACKENDS[name]
    for configured in (None, 10_000):
        schema = backend.json_schema(configured)
        instructions = schema["additionalProperties"]["properties"]["instructions"]
        assert instructions["maxItems"] == backend.max_instructions


@pytest.mark.parametrize("name", NAMES)
def test_a_job_at_the_limits_is_accepted(name: str) -> None:
    backend = BACKENDS[name]
    counts = [backend.max_instructions] * backend.max_experiments
    document = job(backend, *counts)
    parsed = JobValidator(backend, Limits()).validate_bytes(json.dumps(document).encode())
    assert [len(e.instructions) for e in parsed.experiments] == counts


@pytest.mark.parametrize("name", NAMES)
def test_one_instruction_over_the_limit_is_refused_saying_where_how_many_and_the_limit(
    name: str,
) -> None:
    backend = BACKENDS[name]
    limit = backend.max_instructions
    document = job(backend, limit, limit + 1)
    with pytest.raises(JobRejected) as refused:
        JobValidator(backend, Limits()).validate_bytes(json.dumps(document).encode())
    assert str(refused.value) == over_limit_message(backend, 1, limit + 1, limit)


def test_a_lower_configured_limit_applies_and_is_the_one_named() -> None:
    backend = BACKENDS["singlequdit"]
    validator = JobValidator(backend, Limits(instructions_per_experiment_max=10))
    assert validator.max_instructions == 10
    with pytest.raises(JobRejected) as refused:
        validator.validate_document(job(backend, 11))
    assert str(refused.value) == over_limit_message(backend, 0, 11, 10)


def test_the_limit_is_checked_before_any_instruction_is_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Neither the strict reader (a Python call per value), nor the schema, nor the
    semantics run for a job over the limit."""
    backend = BACKENDS["singlequdit"]
    validator = JobValidator(backend, Limits())
    validator.prepare()

    def never(*args: object, **kwargs: object) -> Any:
        raise AssertionError("per-instruction work before the size check")

    monkeypatch.setattr(validation, "loads_strict", never)
    monkeypatch.setattr(validator._parts, "instruction_error", never)
    monkeypatch.setattr(validator._parts, "skeleton", _Refusing())
    monkeypatch.setattr(validator, "_semantic", never)
    data = json.dumps(job(backend, 3, backend.max_instructions + 1)).encode()
    with pytest.raises(JobRejected, match="201 instructions is above the limit of 200"):
        validator.validate_bytes(data)


def test_an_oversized_job_of_garbage_is_refused_for_its_size() -> None:
    """Not for its first bad value: a million bad instructions are not checked one by one."""
    backend = BACKENDS["nali"]
    garbage = "[" + ",".join(["NaN"] * 1000) + "]"
    data = f'{{"experiment_0": {{"instructions": {garbage}, "shots": -1}}}}'.encode()
    with pytest.raises(JobRejected) as refused:
        JobValidator(backend, Limits()).validate_bytes(data)
    assert str(refused.value) == over_limit_message(backend, 0, 1000, 200)
    # too many experiments: refused as the schema refuses them, before the instructions
    many = {f"experiment_{i}": {"instructions": ["x"] * 3} for i in range(4)}
    with pytest.raises(JobRejected, match=r"^the job has 4 experiments; nali takes at most 3$"):
        JobValidator(backend, Limits()).validate_bytes(json.dumps(many).encode())


def test_no_instruction_of_a_job_at_the_limits_goes_through_jsonschema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plain instructions a client sends are accepted by the compiled check: jsonschema's
    per-instruction validation (its cost made admitting a 1 MB job take seconds) is left
    for the instructions it refuses."""
    for backend in BACKENDS.values():
        validator = JobValidator(backend, Limits())
        parts = validator._parts
        monkeypatch.setattr(parts, "base", _Refusing())
        for gate in parts.by_gate:
            monkeypatch.setitem(parts.by_gate, gate, _Refusing())
        counts = [backend.max_instructions] * backend.max_experiments
        validator.validate_document(job(backend, *counts))


class _Refusing:
    """Stands for a jsonschema validator that must not be used."""

    def iter_errors(self, instance: object) -> Any:
        raise AssertionError("a jsonschema validator was used")


def test_the_daemon_ends_an_oversized_job_error_with_the_message_and_queues_one_at_the_limit(
    tree: Settings,
) -> None:
    backend = BACKENDS[tree.backend]
    limit = backend.max_instructions
    drop(tree, "over.json", json.dumps(job(backend, 1, 1, limit + 1)))
    drop(tree, "at.json", json.dumps(job(backend, *[limit] * backend.max_experiments)))
    spooler = Spooler(tree)
    try:
        spooler.run_once()
    finally:
        spooler.close()
    jobs = Jobs(tree.folders)
    try:
        over, at = jobs.read.require("over"), jobs.read.require("at")
        status = jobs.status_files.read("over")
    finally:
        jobs.close()
    assert over.state is JobState.ERROR and at.state is JobState.QUEUED
    assert status["status"] == "ERROR"
    assert status["error_message"] == over_limit_message(backend, 2, limit + 1, limit)
