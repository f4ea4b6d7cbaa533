"""Random circuits of qiskit-cold-atom's gates per backend, and the wrong models they must reject.

Runs in the client's venv, imported by ``make_jobs.py`` (its sibling). Each backend's
generator draws circuits from a seeded ``numpy`` generator, with every gate the backend has,
at angles uniform in ``[0, 2 pi)`` (inside every gate's range), in layers (rotations or hops,
then phases or couplings, and a last rotation or hop: a phase just after the loading, or
just before the measurement, shows nothing): ``make_jobs.py`` keeps those
whose measured distribution is far from the wrong model's (a total variation distance of at
least ``make_jobs.MIN_DISTANCE``), so that a few dozen shots per experiment tell the two
apart.

The wrong models are the conventions a simulator can get wrong without any Rabi or Ramsey
sequence showing it:

- spins: every ``rlz`` (nali: ``rLz``) angle negated, i.e. the loaded state labelled
  ``m = -N/2`` instead of the client's ``m = +N/2`` (labspool's virtual machines before
  this convention was fixed);
- fermions: every ``fphase`` angle negated (``exp(+i theta n)``). The occupations cannot
  show the sign of the hop nor the Jordan-Wigner order (both are relabellings on a chain),
  but they show the sign of ``fphase`` relative to ``fint``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit_cold_atom.spins import RLZGate, SpinGate
from qiskit_nature.operators.second_quantization import SpinOp  # type: ignore[import-not-found]

__all__ = ["CIRCUITS", "WRONG_MODELS", "nali_gate"]

TWO_PI = 2 * math.pi
NALI_SPIN_GENERATORS = {"rLx": "X", "rLz": "Z", "rLz2": "Z_0^2"}


def nali_gate(name: str, theta: float) -> Any:
    """nali's ``rLx``, ``rLz``, ``rLz2``: the client has no gates of these names, so they are
    qiskit-cold-atom ``SpinGate``s with the generators of ``rlx``, ``rlz``, ``rlz2``."""
    label = NALI_SPIN_GENERATORS[name]
    generator = SpinOp(label, register_length=1) if "_" in label else SpinOp(label)
    return SpinGate(name, 1, [theta], generator=float(theta) * generator)


def _angle(rng: np.random.Generator) -> float:
    return round(float(rng.uniform(0.0, TWO_PI)), 6)


def singlequdit(rng: np.random.Generator) -> Iterator[QuantumCircuit]:
    """One wire of 3 to 8 atoms; 2 to 4 layers of an rlx and one or two of rlz, rlz2 (a
    phase on the loaded state alone shows nothing), and a read-out rlx."""
    while True:
        qc = QuantumCircuit(1)
        qc.load_spins(int(rng.integers(3, 9)), 0)
        for _ in range(int(rng.integers(2, 5))):
            qc.rlx(_angle(rng), 0)
            for name in rng.choice(["rlz", "rlz2"], int(rng.integers(1, 3))):
                getattr(qc, str(name))(_angle(rng), 0)
        qc.rlx(_angle(rng), 0)
        qc.measure_all()
        yield qc


def multiqudit(rng: np.random.Generator) -> Iterator[QuantumCircuit]:
    """Two or three wires of 2 or 3 atoms each (the client's solver has one spin length per
    circuit); 2 or 3 layers of rlx on every wire, then three of rlz, rlz2 and rlxly, rlzlz on
    neighbours; a read-out rlx on every wire."""
    while True:
        wires = int(rng.integers(2, 4))
        atoms = int(rng.integers(2, 4))
        qc = QuantumCircuit(wires)
        for wire in range(wires):
            qc.load_spins(atoms, wire)
        for _ in range(int(rng.integers(2, 4))):
            for wire in range(wires):
                qc.rlx(_angle(rng), wire)
            for name in rng.choice(["rlz", "rlz2", "rlxly", "rlzlz"], 3):
                if name in ("rlxly", "rlzlz"):
                    first = int(rng.integers(wires - 1))
                    getattr(qc, str(name))(_angle(rng), [first, first + 1])
                else:
                    getattr(qc, str(name))(_angle(rng), int(rng.integers(wires)))
        for wire in range(wires):
            qc.rlx(_angle(rng), wire)
        qc.measure_all()
        yield qc


def nali(rng: np.random.Generator) -> Iterator[QuantumCircuit]:
    """Three wires (nali has no load: 20 atoms each, make_jobs.NALI_ATOMS); per wire 1 or 2
    layers of an rLx and one or two of rLz, rLz2, and a read-out rLx; two of the wires
    measured, in a random order (three 20-atom wires would have 9261 outcomes)."""
    while True:
        qc = QuantumCircuit(3, 2)
        for wire in range(3):
            for _ in range(int(rng.integers(1, 3))):
                qc.append(nali_gate("rLx", _angle(rng)), [wire])
                for name in rng.choice(["rLz", "rLz2"], int(rng.integers(1, 3))):
                    qc.append(nali_gate(str(name), _angle(rng)), [wire])
            qc.append(nali_gate("rLx", _angle(rng)), [wire])
        measured = [int(w) for w in rng.permutation(3)[:2]]
        qc.measure(measured, [0, 1])
        yield qc


def _hop(qc: QuantumCircuit, rng: np.random.Generator, sites: int) -> None:
    """fhop between a random site and the next, both spins (sequential modes)."""
    a = int(rng.integers(sites - 1))
    qc.fhop([_angle(rng)], [a, a + 1, sites + a, sites + a + 1])


def fermions(rng: np.random.Generator) -> Iterator[QuantumCircuit]:
    """Four sites in the client's sequential order (mode i: site i up, 4 + i: site i down),
    one or two fermions of each spin loaded; 2 to 4 layers of two fhop and two of fint,
    fphase; a last fhop."""
    sites = 4
    while True:
        qc = QuantumCircuit(2 * sites)
        up = rng.choice(sites, int(rng.integers(1, 3)), replace=False)
        down = rng.choice(sites, int(rng.integers(1, 3)), replace=False)
        for mode in sorted([*(int(i) for i in up), *(sites + int(i) for i in down)]):
            qc.fload(mode)

        for _ in range(int(rng.integers(2, 5))):
            _hop(qc, rng, sites)
            _hop(qc, rng, sites)
            for name in rng.choice(["fint", "fphase"], 2):
                if name == "fint":
                    qc.fint(_angle(rng), list(range(2 * sites)))
                else:
                    site = int(rng.integers(sites))
                    qc.fphase([_angle(rng)], [site, sites + site])
        _hop(qc, rng, sites)
        qc.measure_all()
        yield qc


CIRCUITS: dict[str, Callable[[np.random.Generator], Iterator[QuantumCircuit]]] = {
    "singlequdit": singlequdit,
    "multiqudit": multiqudit,
    "fermions": fermions,
    "nali": nali,
}


def negated(circuit: QuantumCircuit, names: tuple[str, ...]) -> QuantumCircuit:
    """*circuit* with the angles of the gates of *names* negated, the rest unchanged."""
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name in names:
            if operation.name == "rlz":
                operation = RLZGate(-float(operation.params[0]))
            elif operation.name == "rLz":
                operation = nali_gate("rLz", -float(operation.params[0]))
            else:  # fphase: a Phase of the same modes
                operation = type(operation)(
                    num_modes=operation.num_modes, mu=[-float(p) for p in operation.params]
                )
        out.append(operation, instruction.qubits, instruction.clbits)
    return out


def spins_rlz_negated(circuit: QuantumCircuit) -> QuantumCircuit:
    return negated(circuit, ("rlz", "rLz"))


def fermions_fphase_negated(circuit: QuantumCircuit) -> QuantumCircuit:
    return negated(circuit, ("fphase",))


WRONG_MODELS: dict[str, tuple[str, Callable[[QuantumCircuit], QuantumCircuit]]] = {
    "singlequdit": ("every rlz angle negated (the loaded state m = -N/2)", spins_rlz_negated),
    "multiqudit": ("every rlz angle negated (the loaded state m = -N/2)", spins_rlz_negated),
    "nali": ("every rLz angle negated (the loaded state m = -N/2)", spins_rlz_negated),
    "fermions": ("every fphase angle negated (exp(+i theta n))", fermions_fphase_negated),
}
