"""Jobs as the released qiskit-cold-atom client posts them, with their exact distributions.

Runs in the client's venv (``scripts/client_venv.sh DIR``), not labspool's:
``DIR/bin/python tests/client/make_jobs.py``. It reads the configurations labspool serves
(``configs/<backend>.json``, written by ``export_configs.py``), builds a handful of circuits
per backend with qiskit-cold-atom's own gates, and submits them through the client's own
code path: ``ColdAtomProvider`` (``GET get_config``, ``cold_atom_type``), its remote backend
(``BackendConfiguration.from_dict``), ``backend.run`` (``circuit_to_cold_atom``: validation
against the configuration, conversion of the fermions' wires, ``POST post_job``). HTTP is an
in-process fake (no network): it serves the configurations and keeps what is posted.

Per job it writes

- ``jobs/<backend>/<name>.json``: the job exactly as posted (the ``job`` string of the POST);
- ``jobs/<backend>/<name>.reference.json``: ``{"experiment_i": {memory: probability}}``, the
  exact distribution of labspool's memory entry (one value per ``measure`` instruction of
  the job, in their order, joined by single spaces), from qiskit-cold-atom's own circuit
  solvers (``SpinCircuitSolver``, ``FermionCircuitSolver``: the final state vector, no shots)
  run on the circuit exactly as the client wrote it;
- ``jobs/wrong_models/<backend>/<name>.json`` for the random jobs: ``{"model": what,
  "tables": {"experiment_i": {memory: probability}}}``, the same solvers on the circuit
  changed as a wrong convention would change it (``random_circuits.WRONG_MODELS``), which
  the tests must reject;

and ``jobs/manifest.json``: per job what it tests, its experiments, shots, atoms, and the
sanity of its tables (the probabilities of each experiment sum to 1 within 1e-9).

Conventions, labspool's and the client's alike (checked by :func:`check_spin_conventions`
at every run):

- Spins. qiskit-cold-atom starts every wire in its level 0, which is ``m = +S`` of its
  ``SpinOp`` (``Z`` is ``diag(S, ..., -S)``), and measures the level ``k = S - m``:
  ``rlx(theta)`` on 2S atoms gives ``k ~ binomial(2S, sin(theta/2)^2)``, ``rlx(pi)`` gives
  ``k = 2S``: k is the number of atoms turned away from the loaded state. labspool's
  virtual machines number the levels so too. Whether a job's distribution depends on the
  sign of ``rlz`` (a Rabi or Ramsey sequence does not; a twisted state read out at an angle
  does) is marked in the manifest (``rlz_sign_matters``).
- Spin wires. The solver's state vector has wire 0 as its most significant digit; its own
  sampled memory lists the wires in reverse (qiskit's little endian). labspool's memory
  follows the job's ``measure`` instructions, so the references are built from the state
  vector, per measured wire.
- Fermions. The client sends interleaved wires (``2 i`` site i up, ``2 i + 1`` site i down);
  the solver's modes are sequential (all up, then all down). The value of a ``measure`` on
  wire w is the occupation of the solver's mode ``convert_wire_order([w], interleaved ->
  sequential)``, the client's own conversion.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from qiskit import QuantumCircuit
from qiskit_cold_atom.circuit_tools import (
    CircuitTools,
    WireOrder,
)
from qiskit_cold_atom.fermions import FermionCircuitSolver
from qiskit_cold_atom.providers import ColdAtomProvider
from qiskit_cold_atom.spins import SpinCircuitSolver
from qiskit_nature.operators.second_quantization import SpinOp  # type: ignore[import-not-found]
from random_circuits import (  # type: ignore[import-not-found]  # a sibling: run as a script
    CIRCUITS,
    WRONG_MODELS,
    nali_gate,
    spins_rlz_negated,
)

HERE = Path(__file__).resolve().parent
URL = "http://labspool.invalid/api/v2/"
PI = math.pi
SHOTS = 100
NALI_ATOMS = 20  # nali has no load: the references assume this many atoms on every wire
# (ATOMS_PER_WIRE of labspool's virtual NaLi, config/apparatus/nali.py)
TOLERANCE = 1e-9
KEEP_ABOVE = 1e-13  # outcomes less likely than this are left out of a reference
MIN_DISTANCE = 0.35  # a random circuit is kept when its wrong model is this far (total variation)
# the random jobs: experiments x shots per job, jobs per backend (nali: 3 x 60 at most a job)
RANDOM_JOBS = {"singlequdit": (6, 60, 1), "multiqudit": (5, 80, 1), "fermions": (5, 80, 1)}
RANDOM_JOBS["nali"] = (3, 60, 2)
RANDOM_SEED = 22  # labspool issue 22: the client's conventions taken literally

Table = dict[str, float]


@dataclass
class Job:
    backend: str
    name: str
    what: str
    circuits: list[Any]
    shots: int = SHOTS
    notes: dict[str, Any] = field(default_factory=dict)
    wrong: bool = False  # also the tables of the backend's wrong model (WRONG_MODELS)


# --- the client's HTTP, in process ----------------------------------------------------------


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.text = json.dumps(body)
        self.status_code = 200

    def json(self) -> Any:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        pass


class FakeServer:
    """labspool's HTTP API as the client calls it: ``get_config`` answers the exported
    configuration of the backend in the URL, ``post_job`` keeps the posted body."""

    def __init__(self, configs: dict[str, dict[str, Any]]) -> None:
        self.configs = configs
        self.posted: list[dict[str, Any]] = []

    def get(self, url: str, params: Any = None, **_: Any) -> _Answer:
        base, call = url.rsplit("/", 1)
        if call != "get_config":
            raise AssertionError(f"the client called {url} while only submitting")
        return _Answer(self.configs[base.removeprefix(URL)])

    def post(self, url: str, json: Any = None, **_: Any) -> _Answer:
        if not url.endswith("/post_job"):
            raise AssertionError(f"the client posted to {url}")
        self.posted.append(json)
        return _Answer(
            {
                "job_id": f"job{len(self.posted)}",
                "status": "INITIALIZING",
                "detail": "Got your json.",
                "error_message": "None",
            }
        )


@contextmanager
def client(configs: dict[str, dict[str, Any]]) -> Iterator[tuple[Any, FakeServer]]:
    """A ColdAtomProvider of the released client, its backends those of *configs*."""
    server = FakeServer(configs)
    with mock.patch("requests.get", server.get), mock.patch("requests.post", server.post):
        provider = ColdAtomProvider(
            credentials={
                "urls": [URL + name for name in configs],
                "username": "alice",
                "token": "not-a-secret",
            }
        )
        yield provider, server


def submit(provider: Any, server: FakeServer, job: Job) -> str:
    """The job string the client posts for *job* (``backend.run``)."""
    with mock.patch("requests.get", server.get), mock.patch("requests.post", server.post):
        backend = provider.get_backend(job.backend)
        backend.run(job.circuits, shots=job.shots)
    posted = server.posted[-1]
    assert set(posted) == {"job", "username", "token"}, posted
    return str(posted["job"])


# --- circuits ----------------------------------------------------------------------------


def spins(wires: int, atoms: int, *, load: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(wires)
    if load:
        for wire in range(wires):
            qc.load_spins(atoms, wire)
    return qc


def fermions(sites: int, up: list[int], down: list[int]) -> QuantumCircuit:
    """A circuit of *sites* tweezers in the client's sequential order (mode i: site i up,
    mode sites + i: site i down), with fermions loaded on the given sites."""
    qc = QuantumCircuit(2 * sites)
    for site in up:
        qc.fload(site)
    for site in down:
        qc.fload(sites + site)
    return qc


def hop(qc: QuantumCircuit, first_site: int, theta: float) -> None:
    """fhop between sites first_site and first_site + 1 (both spins)."""
    sites = qc.num_qubits // 2
    a = first_site
    qc.fhop([theta], [a, a + 1, sites + a, sites + a + 1])


def phase(qc: QuantumCircuit, site: int, theta: float) -> None:
    sites = qc.num_qubits // 2
    qc.fphase([theta], [site, sites + site])


def interact(qc: QuantumCircuit, theta: float) -> None:
    qc.fint(theta, list(range(qc.num_qubits)))


def singlequdit_jobs() -> list[Job]:
    def rabi(theta: float) -> QuantumCircuit:
        qc = spins(1, 4)
        qc.rlx(theta, 0)
        qc.measure_all()
        return qc

    def ramsey(phi: float) -> QuantumCircuit:
        qc = spins(1, 4)
        qc.rlx(PI / 2, 0)
        qc.rlz(phi, 0)
        qc.rlx(PI / 2, 0)
        qc.measure_all()
        return qc

    def twisted(chi: float, phi: float) -> QuantumCircuit:
        qc = spins(1, 6)
        qc.rlx(PI / 2, 0)
        qc.rlz2(chi, 0)
        qc.rlz(phi, 0)
        qc.rlx(PI / 3, 0)
        qc.measure_all()
        return qc

    return [
        Job(
            "singlequdit",
            "rabi",
            "rlx from 0 to pi on 4 atoms: binomial(4, sin(theta/2)^2) counts of the upper "
            "state, 0 atoms up at theta 0 and all 4 at pi (the count's convention)",
            [rabi(t) for t in (0.0, PI / 4, PI / 2, 3 * PI / 4, PI)],
        ),
        Job(
            "singlequdit",
            "ramsey",
            "Ramsey fringe on 4 atoms: rlx(pi/2), rlz(phi), rlx(pi/2) for phi 0, pi/2, pi, "
            "3pi/2 (all up, half, none, half)",
            [ramsey(p) for p in (0.0, PI / 2, PI, 3 * PI / 2)],
        ),
        Job(
            "singlequdit",
            "twisting",
            "one-axis twisting on 6 atoms: rlx(pi/2), rlz2(chi), rlz(phi), a read-out "
            "rlx(pi/3); the distribution depends on the sign of rlz relative to rlz2",
            [twisted(c, p) for c, p in ((0.3, 0.0), (0.3, 0.6), (0.3, 5.6), (0.8, 1.0))],
            notes={"rlz_sign_matters": True},
        ),
    ]


def multiqudit_jobs() -> list[Job]:
    def two_rabi(theta0: float, theta1: float) -> QuantumCircuit:
        qc = spins(2, 3)
        qc.rlx(theta0, 0)
        qc.rlx(theta1, 1)
        qc.measure_all()
        return qc

    def reversed_measure() -> QuantumCircuit:
        qc = QuantumCircuit(3, 2)
        for wire in range(3):
            qc.load_spins(2, wire)
        qc.rlx(PI, 0)
        qc.rlx(PI / 2, 2)
        qc.measure([2, 0], [0, 1])  # wire 2 first, then wire 0; wire 1 not measured
        return qc

    def flip_flop(gamma: float) -> QuantumCircuit:
        qc = spins(2, 2)
        qc.rlx(PI, 0)
        qc.rlxly(gamma, [0, 1])
        qc.measure_all()
        return qc

    def ising(gamma: float) -> QuantumCircuit:
        qc = spins(2, 2)
        qc.rlx(PI / 2, 0)
        qc.rlx(PI / 2, 1)
        qc.rlzlz(gamma, [0, 1])
        qc.rlx(PI / 2, 0)
        qc.rlx(PI / 2, 1)
        qc.measure_all()
        return qc

    def chain(gamma: float) -> QuantumCircuit:
        qc = spins(4, 2)
        qc.rlx(PI, 0)
        for step in range(2):
            for a in range(3):
                qc.rlxly(gamma * (step + 1), [a, a + 1])
        qc.rlz(0.4, 2)
        qc.rlz2(0.5, 3)
        qc.rlx(PI / 3, 3)
        qc.measure_all()
        return qc

    def ising_tilt(gamma: float, phi: float) -> QuantumCircuit:
        qc = spins(2, 3)
        qc.rlx(PI / 2, 0)
        qc.rlx(PI / 2, 1)
        qc.rlzlz(gamma, [0, 1])
        qc.rlz2(0.4, 1)
        qc.rlz(phi, 0)
        qc.rlz(phi, 1)
        qc.rlx(PI / 3, 0)
        qc.rlx(PI / 3, 1)
        qc.measure_all()
        return qc

    return [
        Job(
            "multiqudit",
            "two_rabi",
            "independent Rabi rotations of two 3-atom wires by different angles: each wire "
            "its own binomial, in the order of the measure instructions (wire 0, wire 1)",
            [two_rabi(a, b) for a, b in ((PI, 0.0), (PI / 3, 2 * PI / 3), (PI / 2, PI))],
        ),
        Job(
            "multiqudit",
            "measure_order",
            "three 2-atom wires, only wires 2 and 0 measured, wire 2 first: the memory "
            "follows the measure instructions (wire 2 binomial(2, 1/2), wire 0 all up)",
            [reversed_measure()],
        ),
        Job(
            "multiqudit",
            "flip_flop",
            "rlxly(gamma) between two 2-atom wires after flipping wire 0 (2 atoms up), gamma "
            "0 to 1.6: the excitations move over to wire 1, their total stays 2",
            [flip_flop(g) for g in (0.0, 0.4, 0.8, 1.2, 1.6)],
        ),
        Job(
            "multiqudit",
            "ising",
            "rlzlz between two 2-atom wires inside Ramsey sequences on both: correlated counts",
            [ising(g) for g in (0.0, PI / 4, PI / 2)],
        ),
        Job(
            "multiqudit",
            "chain",
            "four 2-atom wires: wire 0 flipped, two rounds of rlxly along the chain (0,1), "
            "(1,2), (2,3), then rlz on 2, rlz2 and rlx on 3",
            [chain(g) for g in (0.3, 0.7)],
        ),
        Job(
            "multiqudit",
            "ising_tilt",
            "two 3-atom wires: rlx(pi/2) on both, rlzlz, rlz2 on wire 1, Larmor phases, a "
            "read-out rlx(pi/3) on both; depends on the sign of rlz relative to rlzlz, rlz2",
            [ising_tilt(g, p) for g, p in ((0.5, 0.7), (0.5, 5.58), (1.2, 2.0))],
            notes={"rlz_sign_matters": True},
        ),
    ]


def fermions_jobs() -> list[Job]:
    def rabi(theta: float) -> QuantumCircuit:
        qc = fermions(2, up=[0], down=[])
        hop(qc, 0, theta)
        qc.measure_all()
        return qc

    def hubbard(u: float) -> QuantumCircuit:
        qc = fermions(4, up=[1], down=[1])  # a doublon on site 1 of 4
        for _ in range(4):
            hop(qc, 0, 0.25)
            hop(qc, 1, 0.25)
            interact(qc, u)
        qc.measure_all()
        return qc

    def interferometer(phi: float) -> QuantumCircuit:
        qc = fermions(2, up=[0], down=[1])
        hop(qc, 0, PI / 4)  # a beam splitter for each spin
        phase(qc, 1, phi)
        hop(qc, 0, PI / 4)
        qc.measure_all()
        return qc

    def pauli(theta: float) -> QuantumCircuit:
        qc = fermions(3, up=[0, 1], down=[2])
        hop(qc, 1, theta)
        hop(qc, 0, theta)
        phase(qc, 2, 1.0)
        hop(qc, 1, theta)
        qc.measure_all()
        return qc

    return [
        Job(
            "fermions",
            "hop_rabi",
            "one up fermion hopping between two sites: P(site 1) = sin(theta)^2 for theta 0 "
            "to pi/2 (a Rabi-like oscillation of the occupation)",
            [rabi(t) for t in (0.0, PI / 8, PI / 4, 3 * PI / 8, PI / 2)],
        ),
        Job(
            "fermions",
            "hubbard_doublon",
            "an up and a down fermion on site 1 of four, four Trotter steps of hops (0,1), "
            "(1,2) and the on-site interaction U 0, 1, 3: a strong U keeps the pair together",
            [hubbard(u) for u in (0.0, 1.0, 3.0)],
        ),
        Job(
            "fermions",
            "phase_interferometer",
            "fhop(pi/4), fphase(phi) on site 1, fhop(pi/4), an up fermion from site 0 and a "
            "down one from site 1: phi 0 swaps their sites, pi keeps them, pi/2 splits them",
            [interferometer(p) for p in (0.0, PI / 2, PI, 3 * PI / 2)],
        ),
        Job(
            "fermions",
            "pauli_three_sites",
            "two up fermions and a down one in three sites: hops (1,2), (0,1), a phase on "
            "site 2, hop (1,2); at most one fermion per mode (Pauli)",
            [pauli(t) for t in (PI / 6, PI / 3, PI / 2)],
        ),
    ]


def nali_jobs() -> list[Job]:
    def rabi(theta: float) -> QuantumCircuit:
        qc = spins(1, NALI_ATOMS, load=False)
        qc.append(nali_gate("rLx", theta), [0])
        qc.measure_all()
        return qc

    def ramsey(phi: float) -> QuantumCircuit:
        qc = spins(3, NALI_ATOMS, load=False)
        for wire in range(3):
            qc.append(nali_gate("rLx", PI / 2), [wire])
            qc.append(nali_gate("rLz", phi * wire), [wire])
            qc.append(nali_gate("rLx", PI / 2), [wire])
        qc.measure_all()
        return qc

    def twisted(chi: float, phi: float) -> QuantumCircuit:
        qc = spins(2, NALI_ATOMS, load=False)
        for wire in range(2):
            qc.append(nali_gate("rLx", PI / 2), [wire])
            qc.append(nali_gate("rLz2", chi * (wire + 1)), [wire])
            qc.append(nali_gate("rLz", phi), [wire])
            qc.append(nali_gate("rLx", PI / 3), [wire])
        qc.measure_all()
        return qc

    notes = {"atoms_per_wire_assumed": NALI_ATOMS}
    return [
        Job(
            "nali",
            "rabi",
            f"rLx by pi/4, pi/2, pi on one wire of {NALI_ATOMS} atoms (nali has no load)",
            [rabi(t) for t in (PI / 4, PI / 2, PI)],
            shots=60,
            notes=notes,
        ),
        Job(
            "nali",
            "ramsey_wires",
            "Ramsey sequences with rLz(phi * wire) on three wires: different fringes per "
            "wire, in wire order",
            [ramsey(p) for p in (0.0, PI / 4, PI / 2)],
            shots=60,
            notes=notes,
        ),
        Job(
            "nali",
            "twisting",
            "two wires: rLx(pi/2), rLz2 (chi, 2 chi), rLz(phi), a read-out rLx(pi/3); "
            "depends on the sign of rLz relative to rLz2",
            [twisted(c, p) for c, p in ((0.3, 0.6), (0.3, 5.6), (0.6, 1.0))],
            shots=60,
            notes={**notes, "rlz_sign_matters": True},
        ),
    ]


# --- references --------------------------------------------------------------------------


def measured_wires(experiment: dict[str, Any]) -> list[int]:
    wires = []
    for name, on, _ in experiment["instructions"]:
        if name == "measure":
            assert len(on) == 1, on
            wires.append(int(on[0]))
    return wires


def circuit_measured(circuit: QuantumCircuit) -> list[int]:
    """The wires the circuit's ``measure`` instructions read, in their order (the client's
    own wires: sequential for fermions)."""
    return [
        circuit.find_bit(qubit).index
        for instruction in circuit.data
        if instruction.operation.name == "measure"
        for qubit in instruction.qubits
    ]


def circuit_atoms(circuit: QuantumCircuit, backend: str) -> int:
    if backend == "nali":
        return NALI_ATOMS
    loaded = {int(i.operation.params[0]) for i in circuit.data if i.operation.name == "load"}
    assert len(loaded) == 1, f"one atom number on every wire, not {loaded}"
    return loaded.pop()


def spin_probabilities(circuit: QuantumCircuit, atoms: int) -> Any:
    """The solver's distribution of the levels: an array with one axis per wire (wire 0
    first: the state vector's most significant digit). A circuit whose gates act on one wire
    each (nali's, or any without rlxly, rlzlz) leaves its wires independent: each wire is
    solved on its own and the distribution is their product (exact, and small: nali's
    wires hold 20 atoms)."""
    solver = SpinCircuitSolver(spin=Fraction(atoms, 2))
    gates = [i for i in circuit.data if i.operation.name not in ("load", "measure", "barrier")]
    if any(len(i.qubits) > 1 for i in gates):
        state = solver(circuit)["statevector"]
        return (np.abs(state) ** 2).reshape((atoms + 1,) * circuit.num_qubits)
    joint = np.ones(())
    for qubit in circuit.qubits:  # in wire order
        alone = QuantumCircuit(1)
        for instruction in gates:
            if instruction.qubits[0] == qubit:
                alone.append(instruction.operation, [0])
        joint = np.multiply.outer(joint, np.abs(solver(alone)["statevector"]) ** 2)
    return joint


def _by_measured_wire(probabilities: Any, wires: list[int]) -> Table:
    table: Table = {}
    for levels in np.ndindex(probabilities.shape):
        key = " ".join(str(levels[w]) for w in wires)
        table[key] = table.get(key, 0.0) + float(probabilities[levels])
    return table


def fermion_table(circuit: QuantumCircuit, modes: list[int]) -> Table:
    """The occupations of the solver's (sequential) *modes*, in that order."""
    solver = FermionCircuitSolver(num_species=2)
    state = solver(circuit)["statevector"]
    table: Table = {}
    for occupations, amplitude in zip(solver.basis.get_occupations(), state, strict=True):
        key = " ".join(str(int(occupations[mode])) for mode in modes)
        table[key] = table.get(key, 0.0) + float(abs(amplitude) ** 2)
    return table


def sequential_modes(experiment: dict[str, Any]) -> list[int]:
    """The solver's mode of each measured wire of a posted fermions experiment: the
    client's own conversion back from the interleaved wires it sent."""
    sites = experiment["num_wires"] // 2
    return [
        CircuitTools.convert_wire_order(
            [w],
            convention_from=WireOrder.INTERLEAVED,
            convention_to=WireOrder.SEQUENTIAL,
            num_sites=sites,
            num_species=2,
        )[0]
        for w in measured_wires(experiment)
    ]


def table_of(circuit: QuantumCircuit, backend: str, measured: list[int]) -> Table:
    """The exact distribution of the memory entry of *circuit*, its *measured* wires in the
    client's own numbering, as the client's solver gives it for the circuit as written."""
    if backend == "fermions":
        return fermion_table(circuit, measured)
    return _by_measured_wire(spin_probabilities(circuit, circuit_atoms(circuit, backend)), measured)


def posted_measured(experiment: dict[str, Any], backend: str) -> list[int]:
    return sequential_modes(experiment) if backend == "fermions" else measured_wires(experiment)


def distance(first: Table, second: Table) -> float:
    """The total variation distance of two tables."""
    return 0.5 * math.fsum(abs(first.get(k, 0.0) - second.get(k, 0.0)) for k in {*first, *second})


def atoms_of(experiment: dict[str, Any], backend: str) -> int:
    if backend == "nali":
        return NALI_ATOMS
    loaded = {float(params[0]) for name, _, params in experiment["instructions"] if name == "load"}
    assert len(loaded) == 1, f"one atom number on every wire, not {loaded}"
    return int(loaded.pop())


def tables_of(
    job: Job, posted: dict[str, Any], change: Callable[[QuantumCircuit], QuantumCircuit] | None
) -> tuple[dict[str, Table], dict[str, Any]]:
    """Per experiment the table of the circuit as written (*change* None) or changed by
    *change*; and the sanity of the tables (their sums)."""
    tables: dict[str, Table] = {}
    sums = []
    for index, circuit in enumerate(job.circuits):
        experiment = posted[f"experiment_{index}"]
        measured = posted_measured(experiment, job.backend)
        assert measured == circuit_measured(circuit), (measured, circuit_measured(circuit))
        if job.backend != "fermions":
            assert atoms_of(experiment, job.backend) == circuit_atoms(circuit, job.backend)
        table = table_of(circuit if change is None else change(circuit), job.backend, measured)
        total = math.fsum(table.values())
        kept = {k: p for k, p in sorted(table.items(), key=_outcome_order) if p > KEEP_ABOVE}
        kept_total = math.fsum(kept.values())
        if abs(total - 1) > TOLERANCE or abs(kept_total - 1) > TOLERANCE:
            raise AssertionError(f"{job.backend}/{job.name} experiment_{index}: sum {total}")
        tables[f"experiment_{index}"] = kept
        sums.append(kept_total)
    sanity = {
        "probability_sums": sums,
        "max_deviation_from_1": max(abs(s - 1) for s in sums),
        "sums_to_1_within": TOLERANCE,
    }
    return tables, sanity


def _outcome_order(item: tuple[str, float]) -> list[int]:
    return [int(v) for v in item[0].split()]


def rlz_sign_matters(job: Job, posted: dict[str, Any], tables: dict[str, Table]) -> bool:
    """Whether a spin job's references differ from what the circuits give with every rlz
    (rLz) angle negated."""
    negated, _ = tables_of(job, posted, spins_rlz_negated)
    return any(distance(negated[name], table) > 1e-6 for name, table in tables.items())


# --- random circuits ---------------------------------------------------------------------


def random_jobs(backend: str) -> list[Job]:
    """The backend's random jobs (RANDOM_JOBS): circuits of random_circuits.CIRCUITS, kept
    when the backend's wrong model is at least MIN_DISTANCE from them."""
    experiments, shots, count = RANDOM_JOBS[backend]
    what, change = WRONG_MODELS[backend]
    draw = CIRCUITS[backend](np.random.default_rng([RANDOM_SEED, list(JOB_MAKERS).index(backend)]))
    jobs = []
    for number in range(count):
        kept: list[QuantumCircuit] = []
        distances: list[float] = []
        for tried, circuit in enumerate(draw):
            if tried > 10_000:
                raise AssertionError(f"{backend}: too few random circuits tell the models apart")
            measured = circuit_measured(circuit)
            d = distance(
                table_of(circuit, backend, measured), table_of(change(circuit), backend, measured)
            )
            if d >= MIN_DISTANCE:
                kept.append(circuit)
                distances.append(round(d, 6))
            if len(kept) == experiments:
                break
        name = "random" if count == 1 else f"random_{number + 1}"
        notes: dict[str, Any] = {
            "wrong_model": what,
            "wrong_model_distance": distances,
            "random_seed": RANDOM_SEED,
        }
        if backend != "fermions":
            notes["rlz_sign_matters"] = True
        if backend == "nali":
            notes["atoms_per_wire_assumed"] = NALI_ATOMS
        jobs.append(
            Job(
                backend,
                name,
                f"random circuits of every gate at random angles, each at least {MIN_DISTANCE} "
                f"(total variation) from the wrong model: {what}",
                kept,
                shots=shots,
                notes=notes,
                wrong=True,
            )
        )
    return jobs


# --- the conventions, checked ------------------------------------------------------------


def check_spin_conventions() -> None:
    """The facts the module's docstring states, asserted on the installed client."""
    z = np.real(SpinOp("Z", spin=1).to_matrix())
    assert np.allclose(np.diag(z), [1, 0, -1]), z  # level 0 is m = +S
    x = np.real(SpinOp("X", spin=1).to_matrix())
    assert np.allclose(x, x.T) and (x[np.triu_indices(3, 1)] >= 0).all()  # real, positive
    for theta in (PI / 3, PI):
        qc = QuantumCircuit(1)
        qc.rlx(theta, 0)
        p = np.abs(SpinCircuitSolver(spin=Fraction(3, 2))(qc)["statevector"]) ** 2
        q = math.sin(theta / 2) ** 2
        binomial = [math.comb(3, k) * q**k * (1 - q) ** (3 - k) for k in range(4)]
        assert np.allclose(p, binomial), (p, binomial)  # level k ~ binomial(2S, q)
    qc = QuantumCircuit(2)
    qc.rlx(PI, 0)
    solver = SpinCircuitSolver(spin=1, shots=3, seed=1)
    out = solver(qc)
    assert abs(out["statevector"][6]) ** 2 > 1 - 1e-9  # wire 0 is the most significant digit
    assert out["memory"] == ["0 2"] * 3, out["memory"]  # its memory: wire 1, then wire 0
    qc = QuantumCircuit(2)  # wires without a coupling: the product of their own solutions
    qc.rlx(0.7, 0)
    qc.rlz(0.3, 1)
    qc.rlx(1.1, 1)
    full = np.abs(SpinCircuitSolver(spin=1)(qc)["statevector"]) ** 2
    assert np.allclose(full.reshape(3, 3), spin_probabilities(qc, 2))


# --- main --------------------------------------------------------------------------------


JOB_MAKERS: dict[str, Callable[[], list[Job]]] = {
    "singlequdit": singlequdit_jobs,
    "multiqudit": multiqudit_jobs,
    "fermions": fermions_jobs,
    "nali": nali_jobs,
}
WRONG_MODELS_FOLDER = "wrong_models"  # beside the backends' folders, one level deeper


def make_files(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every file of the jobs folder: its path in the folder, its text."""
    files: dict[str, str] = {}
    manifest: dict[str, Any] = {}
    with client(configs) as (provider, server):
        for backend, make in JOB_MAKERS.items():
            for job in [*make(), *random_jobs(backend)]:
                text = submit(provider, server, job)
                posted = json.loads(text)
                tables, sanity = tables_of(job, posted, None)
                notes = dict(job.notes)
                if job.wrong:
                    what, change = WRONG_MODELS[backend]
                    wrong, _ = tables_of(job, posted, change)
                    files[f"{WRONG_MODELS_FOLDER}/{backend}/{job.name}.json"] = (
                        json.dumps({"model": what, "tables": wrong}, indent=1) + "\n"
                    )
                if job.backend != "fermions":
                    matters = rlz_sign_matters(job, posted, tables)
                    if notes.pop("rlz_sign_matters", False) != matters:
                        raise AssertionError(f"{backend}/{job.name}: rlz sign matters: {matters}")
                    notes["rlz_sign_matters"] = matters
                    notes["atoms_per_wire"] = [atoms_of(e, backend) for e in posted.values()]
                else:
                    notes["fermions"] = [
                        sum(1 for i in e["instructions"] if i[0] == "load") for e in posted.values()
                    ]
                files[f"{backend}/{job.name}.json"] = text + "\n"
                files[f"{backend}/{job.name}.reference.json"] = json.dumps(tables, indent=1) + "\n"
                manifest[f"{backend}/{job.name}"] = {
                    "what": job.what,
                    "experiments": len(posted),
                    "shots": job.shots,
                    "num_wires": [e["num_wires"] for e in posted.values()],
                    **notes,
                    **sanity,
                }
    files["manifest.json"] = json.dumps(manifest, indent=1) + "\n"
    return files


def differences(files: dict[str, str], folder: Path) -> list[str]:
    """How *folder* differs from *files*: the jobs byte for byte, the numbers within
    TOLERANCE (another machine's floating point may differ in the last digits)."""
    found = {p.relative_to(folder).as_posix() for p in folder.rglob("*.json")}
    problems = [f"{name}: not made by make_jobs.py" for name in sorted(found - set(files))]
    for name, text in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        old = path.read_text(encoding="utf-8")
        if name.endswith(".reference.json") or name.startswith(f"{WRONG_MODELS_FOLDER}/"):
            new_tables, old_tables = json.loads(text), json.loads(old)
            if name.startswith(f"{WRONG_MODELS_FOLDER}/"):
                if new_tables["model"] != old_tables["model"]:
                    problems.append(f"{name}: another model")
                new_tables, old_tables = new_tables["tables"], old_tables["tables"]
            if set(new_tables) != set(old_tables) or any(
                not _close_tables(new_tables[e], old_tables[e]) for e in new_tables
            ):
                problems.append(f"{name}: another distribution")
        elif name == "manifest.json":
            if not _close(json.loads(text), json.loads(old)):
                problems.append(f"{name}: differs")
        elif text != old:
            problems.append(f"{name}: another job")
    return problems


def _close_tables(new: Table, old: Table) -> bool:
    return all(abs(new.get(k, 0.0) - old.get(k, 0.0)) <= TOLERANCE for k in set(new) | set(old))


def _close(new: Any, old: Any) -> bool:
    if isinstance(new, dict) and isinstance(old, dict):
        return set(new) == set(old) and all(_close(new[k], old[k]) for k in new)
    if isinstance(new, list) and isinstance(old, list):
        return len(new) == len(old) and all(_close(a, b) for a, b in zip(new, old, strict=True))
    if isinstance(new, float) or isinstance(old, float):
        return isinstance(new, int | float) and abs(new - old) <= TOLERANCE
    return bool(new == old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the client's jobs and their exact distributions (client venv)."
    )
    parser.add_argument("--configs", type=Path, default=HERE / "configs")
    parser.add_argument("--out", type=Path, default=HERE / "jobs")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --out differs"
    )
    args = parser.parse_args(argv)
    check_spin_conventions()
    configs = {
        name: json.loads((args.configs / f"{name}.json").read_text(encoding="utf-8"))
        for name in JOB_MAKERS
    }
    files = make_files(configs)
    if args.check:
        problems = differences(files, args.out)
        for problem in problems:
            print(f"{args.out / problem}", file=sys.stderr)
        if problems:
            print("make them again: tests/client/README.md", file=sys.stderr)
        return 1 if problems else 0
    for name, text in files.items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    manifest = json.loads(files["manifest.json"])
    for name, entry in manifest.items():
        print(f"{name}: {entry['experiments']} experiments x {entry['shots']} shots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
