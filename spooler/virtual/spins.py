"""The physics of the virtual spin machines with several wires (multiqudit, nali), exactly.

Each loaded wire holds N two-level atoms prepared together: a spin of length ``l = N/2`` in
its levels ``k = 0 .. N``, level ``k`` being ``m = l - k`` (qiskit-cold-atom's numbering, as
in :mod:`spooler.virtual.physics`): ``load`` prepares level 0 (``m = +l``), a measurement
gives the level, the number of atoms found out of the loaded state. The register's state
lives on the product space of the loaded wires, so gates that couple two wires entangle
them:

- ``rlx``, ``rlz``, ``rlz2`` on one wire: ``exp(-i theta Lx)``, ``exp(-i theta Lz)``,
  ``exp(-i theta Lz^2)``;
- ``rlzlz`` on two wires: ``exp(-i theta Lz1 Lz2)`` (diagonal);
- ``rlxly`` on two wires: ``exp(-i theta (Lx1 Lx2 + Ly1 Ly2))``, the flip-flop
  ``(L1+ L2- + L1- L2+) / 2``, which keeps ``k1 + k2`` (the total Lz of the pair): it is
  applied block by block, one block per value of ``k1 + k2``, each at most ``min(N1, N2) + 1``
  states wide, so a pair of 500-atom wires costs no 251001-wide matrix.

These are the generators of qiskit-cold-atom's spin gates (``RLXGate``, ``RLZGate``,
``RLZ2Gate``, ``RLZLZGate``, ``RLXLYGate``), in its matrices. A gate on a wire with no atoms
acts on nothing. A measurement draws the levels of the measured wires together, from
``|<k1, k2, ...|psi>|^2``.

The product space grows as ``(N1 + 1) (N2 + 1) ...``: the virtual machine's limit
(``states``, checked by the spooler before a job runs, see ``limits.exact_states_max``) is
what this evolves exactly in a shot's compilation time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from spooler.virtual.physics import _lx_eigen, lz_diagonal

__all__ = ["STATES_MAX", "SpinRegister", "states_of"]

STATES_MAX = 1 << 16  # 4 wires of 15 atoms, or 2 of 255: evolved in well under a second

Complex = NDArray[np.complex128]
Real = NDArray[np.float64]


def states_of(atoms: list[int]) -> int:
    """The size of the product space of wires holding *atoms* atoms each."""
    size = 1
    for n in atoms:
        size *= n + 1
    return size


@lru_cache(maxsize=16)
def _flip_flop_blocks(n1: int, n2: int) -> tuple[tuple[NDArray[np.int64], Real, Complex], ...]:
    """Per value of k1 + k2: the k1 of its states, and the eigen-decomposition of the
    flip-flop ``(L1+ L2- + L1- L2+) / 2`` restricted to them."""
    l1, l2 = n1 / 2, n2 / 2

    def lower(length: float, k: Real) -> Real:
        """<k+1| L- |k>, level k being m = l - k: sqrt(l(l+1) - m(m-1))."""
        m = length - k
        return np.sqrt(np.maximum(length * (length + 1) - m * (m - 1), 0.0))

    blocks = []
    for total in range(n1 + n2 + 1):
        k1 = np.arange(max(0, total - n2), min(n1, total) + 1)
        size = len(k1)
        h = np.zeros((size, size))
        if size > 1:
            # |k1, total - k1> -> |k1 + 1, total - k1 - 1> through L1- L2+ (level k2 - 1 is
            # m2 + 1); <k2 - 1| L2+ |k2> = <k2| L2- |k2 - 1>
            below = k1[:-1].astype(np.float64)
            coupling = lower(l1, below) * lower(l2, (total - below - 1).astype(np.float64)) / 2
            h += np.diag(coupling, -1) + np.diag(coupling, 1)
        values, vectors = np.linalg.eigh(h)
        blocks.append((k1, values, vectors.astype(np.complex128)))
    return tuple(blocks)


class SpinRegister:
    """Large spins on wires 0..n-1; each gate applied exactly on the loaded wires' space."""

    def __init__(self, states_max: int = STATES_MAX) -> None:
        self.states_max = states_max
        self.atoms: dict[int, int] = {}  # wire -> atoms, in the order of the state's axes
        self.state: Complex = np.ones((), dtype=np.complex128)

    def load(self, wire: int, atoms: int) -> None:
        if wire in self.atoms:
            raise ValueError(f"wire {wire} is loaded already")
        if atoms < 1:
            raise ValueError("a spin needs at least one atom")
        size = states_of([*self.atoms.values(), atoms])
        if size > self.states_max:
            raise ValueError(
                f"{size} states exceed the virtual machine's limit of {self.states_max}"
            )
        loaded = np.zeros(atoms + 1, dtype=np.complex128)
        loaded[0] = 1.0  # level 0, m = +N/2: every atom in the state it is loaded in
        self.state = np.multiply.outer(self.state, loaded)
        self.atoms[wire] = atoms

    def _axis(self, wire: int) -> int | None:
        return list(self.atoms).index(wire) if wire in self.atoms else None

    def _m(self, wire: int) -> Real:
        """Lz of *wire* along its axis: m = N/2 - k."""
        return lz_diagonal(self.atoms[wire])

    def _along(self, axis: int, values: Real) -> Real:
        shape = [1] * self.state.ndim
        shape[axis] = len(values)
        return values.reshape(shape)

    def rlx(self, wire: int, theta: float) -> None:
        axis = self._axis(wire)
        if axis is None:
            return
        values, vectors = _lx_eigen(self.atoms[wire])
        unitary = vectors @ np.diag(np.exp(-1j * theta * values)) @ vectors.conj().T
        moved = np.moveaxis(self.state, axis, 0)
        self.state = np.moveaxis(np.tensordot(unitary, moved, axes=1), 0, axis)

    def rlz(self, wire: int, theta: float) -> None:
        axis = self._axis(wire)
        if axis is not None:
            self.state = self.state * np.exp(-1j * theta * self._along(axis, self._m(wire)))

    def rlz2(self, wire: int, theta: float) -> None:
        axis = self._axis(wire)
        if axis is not None:
            self.state = self.state * np.exp(-1j * theta * self._along(axis, self._m(wire) ** 2))

    def rlzlz(self, first: int, second: int, theta: float) -> None:
        a, b = self._axis(first), self._axis(second)
        if a is None or b is None:
            return  # a spin of no atoms: Lz = 0
        product = self._along(a, self._m(first)) * self._along(b, self._m(second))
        self.state = self.state * np.exp(-1j * theta * product)

    def rlxly(self, first: int, second: int, theta: float) -> None:
        a, b = self._axis(first), self._axis(second)
        if a is None or b is None:
            return  # no partner to flip-flop with
        n1, n2 = self.atoms[first], self.atoms[second]
        pair = np.moveaxis(self.state, (a, b), (0, 1))
        rest = pair.shape[2:]
        flat = pair.reshape(n1 + 1, n2 + 1, -1)
        out = np.empty_like(flat)
        for total, (k1, values, vectors) in enumerate(_flip_flop_blocks(n1, n2)):
            block = flat[k1, total - k1]  # (block size, rest)
            phases = np.exp(-1j * theta * values)[:, None]
            out[k1, total - k1] = vectors @ (phases * (vectors.conj().T @ block))
        self.state = np.moveaxis(out.reshape((n1 + 1, n2 + 1, *rest)), (0, 1), (a, b))

    def probabilities(self, wires: list[int]) -> Real:
        """The joint distribution of the levels of *wires*, in that order (an array with one
        axis per wire; a wire with no atoms has the one level 0)."""
        p = np.abs(self.state) ** 2
        p = p / p.sum()
        loaded = list(self.atoms)
        keep = [loaded.index(w) for w in wires if w in self.atoms]
        others = tuple(i for i in range(p.ndim) if i not in keep)
        marginal = p.sum(axis=others) if others else p
        # marginal's axes are the kept ones in increasing axis order: put them in wire order
        order = sorted(keep)
        marginal = np.transpose(marginal, [order.index(i) for i in keep])
        shape = [self.atoms[w] + 1 if w in self.atoms else 1 for w in wires]
        return marginal.reshape(shape)

    def draw(self, wires: list[int], rng: np.random.Generator) -> list[int]:
        """One measurement of the levels of *wires*."""
        p = self.probabilities(wires)
        index = int(rng.choice(p.size, p=p.ravel()))
        return [int(k) for k in np.unravel_index(index, p.shape)]
