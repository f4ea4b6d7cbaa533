"""singlequdit, multiqudit, fermions and nali on their virtual machines (`lab up --backend NAME`).

Per machine, one lab with both daemons. The client's random circuits (tests/client/jobs,
``random*.json``: several experiments, a few hundred shots, every gate at random angles),
posted as the client wrote them, must fit the client's own solvers' distributions and
reject a wrong model (``jobs/wrong_models``: rlz negated, the loaded state labelled
``m = -N/2``; fphase negated), all in one chi-square test each. multiqudit, fermions and
nali: a seeded job whose distribution is computed here
exactly (spooler.virtual.spins and spooler.virtual.fermions, checked in tests/virtual/test_spins.py
and
tests/virtual/test_fermions.py against independent models) and compared shot by shot with what
the camera image analysis returned, by a chi-square test that a wrong model fails; the
conservation laws of the machine checked on every shot; the memory's shape; the result read
by qiskit; the picture of the job. Then the real client's jobs of that machine
(tests/client/jobs) against qiskit-cold-atom's own simulators' distributions, with few shots
(tests/virtual/test_client_conventions.py checks their exact distributions).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spooler.core.backends import get_backend
from spooler.virtual.fermions import TweezerFermions
from spooler.virtual.spins import SpinRegister
from tests.labtools import VirtualLab, distribution_p_value, needs_suite, virtual_lab
from tests.virtual.clientjobs import fit, random_jobs, reference, wrong_model

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.long, needs_suite]

CLIENT_JOBS = Path(__file__).parents[1] / "client" / "jobs"
# the released client's venv (scripts/client_venv.sh .venv/client; .ci/run builds it)
CLIENT_PYTHON = Path(__file__).parents[2] / ".venv" / "client" / "bin" / "python"
SHOTS = 120
CLIENT_SHOTS = 15


@pytest.fixture(scope="module", params=["singlequdit", "multiqudit", "fermions", "nali"])
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VirtualLab]:
    root = tmp_path_factory.mktemp(request.param) / "lab"
    with virtual_lab(root, result_daemon=True, backend=request.param) as running:
        yield running


def done(lab: VirtualLab, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    status = lab.wait_for_status(job_id, lambda s: s.get("status") in ("DONE", "ERROR"), timeout_s)
    assert status["status"] == "DONE", status
    return json.loads((lab.settings.folders.results / f"{job_id}.json").read_text())  # type: ignore[no-any-return]


def memory_of(result: dict[str, Any]) -> list[list[str]]:
    return [r["data"]["memory"] for r in result["results"]]


def key(values: tuple[int, ...] | list[int]) -> str:
    return " ".join(map(str, values))


# -- the exact models of the seeded jobs ---------------------------------------------------


def spin_distribution(
    atoms: list[int], gates: list[tuple[str, tuple[int, ...], float]], measured: list[int]
) -> dict[str, float]:
    spins = SpinRegister()
    for wire, n in enumerate(atoms):
        spins.load(wire, n)
    for name, wires, theta in gates:
        getattr(spins, name)(*wires, theta)
    p = spins.probabilities(measured)
    return {key(idx): float(p[idx]) for idx in np.ndindex(p.shape) if p[idx] > 1e-12}


def independent_distribution(
    atoms: int, gates: list[tuple[str, tuple[int, ...], float]], measured: list[int]
) -> dict[str, float]:
    """nali: every wire a spin of *atoms* atoms of its own, nothing coupling them."""
    joint: dict[tuple[int, ...], float] = {(): 1.0}
    for wire in measured:
        spin = SpinRegister()
        spin.load(wire, atoms)
        for name, wires, theta in gates:
            if wires == (wire,):
                getattr(spin, name)(wire, theta)
        p = spin.probabilities([wire])
        joint = {(*k, n): q * float(p[n]) for k, q in joint.items() for n in range(atoms + 1)}
    return {key(k): q for k, q in joint.items() if q > 1e-12}


def fermion_distribution(
    loads: list[int], gates: list[tuple[str, tuple[int, ...], float]], measured: list[int]
) -> dict[str, float]:
    tweezers = TweezerFermions()
    for mode in loads:
        tweezers.load(mode)
    for name, wires, theta in gates:
        if name == "fint":
            tweezers.fint(theta)
        else:
            getattr(tweezers, name)(wires, theta)
    return {key(k): p for k, p in tweezers.marginal(measured).items()}


def instructions(
    loads: list[list[Any]], gates: list[tuple[str, tuple[int, ...], float]], measured: list[int]
) -> list[list[Any]]:
    body = [*loads, *([name, list(wires), [theta]] for name, wires, theta in gates)]
    return body + [["measure", [w], []] for w in measured]


SPIN_GATES = [
    ("rlx", (0,), math.pi),  # all four atoms of wire 0 up, none of wire 1
    ("rlxly", (0, 1), 0.6),  # flip-flop: atoms move between the wires, k0 + k1 = 4 kept
    ("rlx", (2,), math.pi / 2),
    ("rlzlz", (1, 2), 1.1),  # a phase on wire 2 that depends on wire 1's count
    ("rlx", (2,), math.pi / 2),
]
FERMION_GATES = [
    ("fhop", (0, 1, 2, 3), 0.7),
    ("fint", tuple(range(8)), 1.9),
    ("fphase", (2, 3), 0.5),
    ("fhop", (0, 1, 2, 3), 0.9),
    ("fhop", (2, 3, 4, 5), 0.4),
]


def test_random_circuits_fit_the_clients_solvers_and_not_a_wrong_model(
    lab: VirtualLab, tmp_path: Path
) -> None:
    """Every shot of the client's random jobs, as posted; one fit per job."""
    backend = lab.settings.backend
    paths = random_jobs(backend)
    assert paths, f"no random jobs for {backend}"
    for path in paths:
        lab.submit(path.stem, json.loads(path.read_text()), tmp_path)
    shots = 0
    for path in paths:
        result = done(lab, path.stem)
        names = [r["header"]["name"] for r in result["results"]]
        memories = memory_of(result)
        shots += sum(len(m) for m in memories)
        right = reference(path)
        model, wrong = wrong_model(path)
        per_value = backend == "nali"  # independent 20-atom wires: each alone
        p_right = fit(memories, [right[n] for n in names], per_value=per_value)
        p_wrong = fit(memories, [wrong[n] for n in names], per_value=per_value)
        assert p_right > 1e-3, (path.name, p_right, memories[0][:10])
        assert p_wrong < 1e-6, f"{path.name}: the wrong model ({model}) fits too: {p_wrong}"
    assert shots >= 300


def test_the_machines_distribution_conservation_and_memory(lab: VirtualLab, tmp_path: Path) -> None:
    backend = lab.settings.backend
    if backend == "singlequdit":
        pytest.skip("singlequdit's seeded jobs: tests/virtual/test_virtual_lab.py")
    if backend == "multiqudit":
        atoms, measured = [4, 3, 2], [2, 0, 1]  # measured out of order: memory follows measure
        body = instructions(
            [["load", [w], [float(n)]] for w, n in enumerate(atoms)], SPIN_GATES, measured
        )
        exact = spin_distribution(atoms, SPIN_GATES, measured)
        no_coupling = spin_distribution(atoms, [g for g in SPIN_GATES if g[0] == "rlx"], measured)
        num_wires = 3
    elif backend == "fermions":
        loads, measured = [0, 3, 5], [0, 1, 2, 3, 4, 5]
        body = instructions([["load", [m], []] for m in loads], FERMION_GATES, measured)
        exact = fermion_distribution(loads, FERMION_GATES, measured)
        no_coupling = fermion_distribution(
            loads, [g for g in FERMION_GATES if g[0] != "fint"], measured
        )
        num_wires = 8  # fint acts on all eight
    else:
        gates: list[tuple[str, tuple[int, ...], float]] = [
            ("rLx", (0,), 1.2),
            ("rLx", (3,), 2.5),
            ("rLz", (3,), 0.4),
            ("rLx", (3,), 0.7),
        ]
        measured = [0, 3, 4]
        body = instructions([], gates, measured)
        spin_gates = [(name.lower(), wires, theta) for name, wires, theta in gates]
        exact = no_coupling = {}  # per wire, below; the wrong model: without rLz
        num_wires = 5
    shots = min(SHOTS, get_backend(backend).max_shots)  # nali: 60
    job = {
        "experiment_0": {"instructions": body, "num_wires": num_wires, "shots": shots, "seed": 7}
    }
    lab.submit("exact", job, tmp_path)
    result = done(lab, "exact")
    (memory,) = memory_of(result)
    assert len(memory) == shots
    values = [[int(v) for v in entry.split(" ")] for entry in memory]
    assert all(len(v) == len(measured) for v in values), memory[:3]
    if backend == "nali":
        # Independent wires, so the wires one by one: 60 shots (nali's most) spread over the
        # joint outcomes of three 20-atom wires are too few for the joint test.
        def each(model: list[dict[str, float]]) -> float:
            return min(
                distribution_p_value([e.split(" ")[i] for e in memory], model[i])
                for i in range(len(measured))
            )

        p_right = each([independent_distribution(20, spin_gates, [w]) for w in measured])
        p_wrong = each([independent_distribution(20, spin_gates[:2], [w]) for w in measured])
    else:
        p_right = distribution_p_value(memory, exact)
        p_wrong = distribution_p_value(memory, no_coupling)
    assert p_right > 1e-3, (p_right, memory[:10])
    assert p_wrong < 1e-6, f"a model without the coupling gate fits too: {p_wrong}"
    if backend == "multiqudit":  # measured 2, 0, 1: rlxly kept the total Lz of wires 0, 1
        assert all(v[1] + v[2] == 4 and 0 <= v[0] <= 2 for v in values), values
    elif backend == "fermions":  # 1 up (mode 0; modes 0, 2, 4), 2 down (3, 5; 1, 3, 5)
        assert all(v[0] + v[2] + v[4] == 1 and v[1] + v[3] + v[5] == 2 for v in values), values
    else:
        assert all(v[2] == 0 for v in values), "wire 4 was never rotated"
    # The picture, named in the result's header.
    picture = Path(result["header"]["artefacts"]["exact.png"])
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    if find_spec("qiskit") is not None:
        from qiskit.result import Result

        assert Result.from_dict(result).get_memory(0) == memory


def client_jobs(backend: str) -> list[Path]:
    return sorted((CLIENT_JOBS / backend).glob("*.json"))


def test_the_clients_jobs_match_qiskit_cold_atoms_simulators(
    lab: VirtualLab, tmp_path: Path
) -> None:
    """Each job as the client posted it, but with at most CLIENT_SHOTS shots per experiment
    (the client's 100 would take CI ~20 minutes here); read back as the client reads it."""
    backend = lab.settings.backend
    jobs = [
        p
        for p in client_jobs(backend)
        if not p.name.endswith(".reference.json") and p not in random_jobs(backend)
    ]
    assert jobs, f"no client jobs for {backend} in {CLIENT_JOBS}"
    for path in jobs:
        job = json.loads(path.read_text())
        for body in job.values():
            body["shots"] = min(body["shots"], CLIENT_SHOTS)
        lab.submit(f"client_{path.stem}", job, tmp_path)
    for path in jobs:
        reference = json.loads(path.with_suffix(".reference.json").read_text())
        result = done(lab, f"client_{path.stem}")
        for experiment, memory in zip(result["results"], memory_of(result), strict=True):
            name = experiment["header"]["name"]
            p = distribution_p_value(memory, reference[name])
            assert p > 1e-4, (path.name, name, p, memory[:10])
        if CLIENT_PYTHON.exists():  # the released client reads the result (CI builds it)
            result_file = lab.settings.folders.results / f"client_{path.stem}.json"
            read = subprocess.run(
                [
                    str(CLIENT_PYTHON),
                    str(CLIENT_JOBS.parent / "check_result.py"),
                    str(result_file),
                    "--reference",
                    str(path.with_suffix(".reference.json")),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert read.returncode == 0, read.stdout + read.stderr
