"""Property-based tests of validation and rendering (hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooler.core.backends import BACKENDS, Backend, Gate
from spooler.core.errors import JobRejected, RenderError
from spooler.core.model import Experiment, Instruction
from spooler.core.resources import config_dir
from spooler.core.settings import Limits
from spooler.pipeline.render import MARKER, Renderer
from spooler.pipeline.validation import JobValidator


def _renderer(backend: Backend) -> Renderer:
    header = config_dir() / "apparatus" / f"{backend.name}.py"
    if not header.exists():
        header = config_dir() / "apparatus" / "generic.py"
    return Renderer(backend, header, "apparatus")


RENDERERS = {name: _renderer(b) for name, b in BACKENDS.items()}
VALIDATORS = {name: JobValidator(b, Limits()) for name, b in BACKENDS.items()}


def _wire_groups(gate: Gate, num_wires: int) -> st.SearchStrategy[list[int]]:
    if gate.coupling_map is not None:
        groups = [list(g) for g in gate.coupling_map if max(g) < num_wires]
        return st.sampled_from(groups) if groups else st.nothing()
    return st.lists(st.integers(0, num_wires - 1), min_size=1, max_size=num_wires, unique=True)


@st.composite
def instruction(draw: st.DrawFn, backend: Backend, num_wires: int) -> list[Any]:
    usable = [
        g
        for g in backend.gates.values()
        if g.coupling_map is None or any(max(group) < num_wires for group in g.coupling_map)
    ]
    gate = draw(st.sampled_from(sorted(usable, key=lambda g: g.name)))
    wires = draw(_wire_groups(gate, num_wires))
    params: list[float | int] = []
    for p in gate.params:
        if p.integral:
            value = draw(st.integers(int(p.minimum), int(p.maximum)))
            params.append(draw(st.sampled_from([value, float(value)])))
        else:
            params.append(
                draw(st.floats(p.minimum, p.maximum, allow_nan=False, allow_infinity=False))
            )
    return [gate.name, wires, params]


def _physical(instructions: list[list[Any]]) -> list[list[Any]]:
    """Without what the machines' physics forbids (spooler.pipeline.semantics): a second load of a
    wire, anything on a wire after its measure."""
    loaded: set[int] = set()
    measured: set[int] = set()
    kept = []
    for name, wires, params in instructions:
        if measured & set(wires) or (name == "load" and wires[0] in loaded):
            continue
        if name == "load":
            loaded.add(wires[0])
        if name == "measure":
            measured.update(wires)
        kept.append([name, wires, params])
    return kept


@st.composite
def valid_job(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(BACKENDS)))
    backend = BACKENDS[name]
    experiments = {}
    for i in range(draw(st.integers(1, backend.max_experiments))):
        num_wires = draw(st.integers(1, backend.num_wires))
        body: dict[str, Any] = {
            "instructions": _physical(draw(st.lists(instruction(backend, num_wires), max_size=12))),
            "num_wires": num_wires,
            "shots": draw(st.integers(1, backend.max_shots)),
        }
        if draw(st.booleans()):
            body["wire_order"] = backend.default_wire_order
        if draw(st.booleans()):
            body["seed"] = draw(st.integers(0, 2**63 - 1))
        experiments[f"experiment_{i}"] = body
    return name, experiments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_job())
def test_any_schema_valid_job_renders_source_that_passes_the_check_and_compiles(
    case: tuple[str, dict[str, Any]],
) -> None:
    backend, document = case
    job = VALIDATORS[backend].validate_bytes(json.dumps(document).encode())
    for experiment, raw in zip(job.experiments, document.values(), strict=True):
        source = RENDERERS[backend].render(experiment)  # render() runs the AST check itself
        RENDERERS[backend].check(source)
        compile(source, f"{experiment.name}.py", "exec")
        calls = source.split(MARKER, 1)[1].strip().splitlines()
        assert len(calls) == len(raw["instructions"]) + 1


ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _tail(source: str) -> str:
    return source.split(MARKER, 1)[1]


@settings(max_examples=300, deadline=None)
@given(st.text(), ANYTHING)
def test_no_string_in_a_gate_name_or_parameter_reaches_the_source_unchecked(
    name: str, param: Any
) -> None:
    validator, renderer = VALIDATORS["singlequdit"], RENDERERS["singlequdit"]
    document = {
        "experiment_0": {"instructions": [[name, [0], [param]]], "num_wires": 1, "shots": 1}
    }
    try:
        data = json.dumps(document, allow_nan=True).encode()
        job = validator.validate_bytes(data)
    except JobRejected:
        pass
    else:
        # Accepted: the name is a whitelisted gate and the parameter a finite number in bounds.
        gate = BACKENDS["singlequdit"].gates[name]
        assert isinstance(param, int | float) and not isinstance(param, bool)
        assert math.isfinite(param) and gate.params[0].minimum <= param <= gate.params[0].maximum
        tail = _tail(renderer.render(job.experiments[0]))
        assert f"apparatus.{gate.method}([0], [{float(param)!r}])" in tail
    # Whatever validation says, rendering on its own lets nothing unchecked through.
    experiment = Experiment(
        "experiment_0", (Instruction(name, (0,), (param,)),), 1, 1, "sequential"
    )
    try:
        source = renderer.render(experiment)
    except RenderError:
        return
    assert name in renderer.methods
    assert type(param) in (int, float) and math.isfinite(param)
    assert isinstance(name, str) and name not in _tail(source).replace(f"apparatus.{name}(", "")
