"""The physics of the virtual fermions machine: a tweezer array, evolved exactly in Fock space.

Four tweezer sites, each with two spin states: 8 fermionic modes, numbered INTERLEAVED as
the machine numbers its wires (mode ``2 i`` is site ``i`` spin up, ``2 i + 1`` site ``i``
spin down; qiskit-cold-atom's client converts its sequential circuits to this order). The
state is a vector over the 256 occupation patterns, bit ``j`` of the index being mode ``j``.

The operators are qiskit-cold-atom's, matrix element for matrix element: its
``FermionCircuitSolver`` numbers the modes sequentially (all the up modes by site, then the
down ones: mode ``2 i + s`` here is its ``s * 4 + i``), and ``f+``, ``f`` of a mode carry the
Jordan-Wigner sign of the occupied modes before it in that order, as here. (Another order
is a relabelling with the same occupations' distribution; so is the sign of every hop,
``f_i -> (-1)^i f_i``. What the occupations do show is the sign of ``fint`` relative to
``fphase``: the tests check it against the client's solver.)

The gates are those of qiskit-cold-atom's fermionic tweezer simulator (``Hop``,
``Interaction``, ``Phase`` in ``fermion_gate_library``), ``U = exp(-i H)``:

- ``load`` on a mode: ``f+``; the loads of an experiment make the basis state of their
  occupation pattern, the solver's initial state (Pauli: a mode holds one fermion, a second
  load is refused);
- ``fhop(theta)`` on the 4 wires of two adjacent sites ``a, a+1``:
  ``H = -theta sum_s (f+_{a,s} f_{a+1,s} + f+_{a+1,s} f_{a,s})``, each spin hops alone;
- ``fint(theta)`` on all 8 wires: ``H = theta sum_i n_{i,up} n_{i,down}``;
- ``fphase(theta)`` on the 2 wires of site ``i``: ``H = theta (n_{i,up} + n_{i,down})``.

All three keep the number of fermions of each spin; the tests check it. ``measure`` reads
the occupation (0 or 1) of each measured mode, drawn together from ``|<n|psi>|^2``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["MODES", "TweezerFermions", "sequential", "site_of", "spin_of"]

SITES = 4
MODES = 2 * SITES

Complex = NDArray[np.complex128]
Real = NDArray[np.float64]


def site_of(mode: int) -> int:
    return mode // 2


def spin_of(mode: int) -> int:
    """0: up, 1: down."""
    return mode % 2


def sequential(mode: int) -> int:
    """The client's (sequential) number of the interleaved *mode*: spin * SITES + site."""
    return spin_of(mode) * SITES + site_of(mode)


@lru_cache(maxsize=1)
def _annihilators() -> tuple[Real, ...]:
    """``f_j`` for each mode as a 256 x 256 matrix (Jordan-Wigner: the sign of the occupied
    modes before ``j`` in the client's sequential order)."""
    size = 1 << MODES
    operators = []
    for j in range(MODES):
        before = sum(1 << mode for mode in range(MODES) if sequential(mode) < sequential(j))
        f = np.zeros((size, size))
        for state in range(size):
            if state >> j & 1:
                signs = bin(state & before).count("1")
                f[state & ~(1 << j), state] = (-1) ** signs
        operators.append(f)
    return tuple(operators)


@lru_cache(maxsize=1)
def _occupations() -> Real:
    """``n_j`` of every basis state: (256, 8)."""
    states = np.arange(1 << MODES)
    return ((states[:, None] >> np.arange(MODES)) & 1).astype(np.float64)


def _hop_generator(site: int) -> Real:
    f = _annihilators()
    h = np.zeros_like(f[0])
    for spin in (0, 1):
        a, b = f[2 * site + spin], f[2 * (site + 1) + spin]
        h -= a.T @ b + b.T @ a  # real operators: the adjoint is the transpose
    return h


@lru_cache(maxsize=SITES)
def _hop_eigen(site: int) -> tuple[Real, Real]:
    return np.linalg.eigh(_hop_generator(site))


class TweezerFermions:
    def __init__(self) -> None:
        self.state: Complex = np.zeros(1 << MODES, dtype=np.complex128)
        self.state[0] = 1.0  # empty tweezers

    def load(self, mode: int) -> None:
        """A fermion created in *mode* (``f+``): loads before any gate make the basis state of
        their occupation pattern, the client's initial state (up to a global sign)."""
        occupied = (np.arange(self.state.size) >> mode) & 1 == 1
        if np.any(np.abs(self.state[occupied]) > 1e-12):
            raise ValueError(f"mode {mode} holds a fermion already (Pauli)")
        self.state = _annihilators()[mode].T @ self.state

    def fhop(self, wires: tuple[int, ...], theta: float) -> None:
        site = min(wires) // 2
        if sorted(wires) != [2 * site, 2 * site + 1, 2 * site + 2, 2 * site + 3]:
            raise ValueError(f"fhop acts on the four modes of two adjacent sites, not {wires}")
        values, vectors = _hop_eigen(site)
        self.state = vectors @ (np.exp(-1j * theta * values) * (vectors.T @ self.state))

    def fint(self, theta: float) -> None:
        n = _occupations()
        doubles = (n[:, 0::2] * n[:, 1::2]).sum(axis=1)
        self.state = np.exp(-1j * theta * doubles) * self.state

    def fphase(self, wires: tuple[int, ...], theta: float) -> None:
        n = _occupations()
        count = n[:, list(wires)].sum(axis=1)
        self.state = np.exp(-1j * theta * count) * self.state

    def probabilities(self) -> Real:
        p = np.abs(self.state) ** 2
        return p / p.sum()  # type: ignore[no-any-return]

    def spin_counts(self) -> dict[tuple[int, int], float]:
        """The distribution of (fermions up, fermions down)."""
        n = _occupations()
        up, down = n[:, 0::2].sum(axis=1), n[:, 1::2].sum(axis=1)
        result: dict[tuple[int, int], float] = {}
        for u, d, p in zip(up, down, self.probabilities(), strict=True):
            if p > 1e-15:
                result[int(u), int(d)] = result.get((int(u), int(d)), 0.0) + float(p)
        return result

    def draw(self, modes: list[int], rng: np.random.Generator) -> list[int]:
        """One measurement of the occupations of *modes*, in that order."""
        index = int(rng.choice(self.state.size, p=self.probabilities()))
        return [(index >> m) & 1 for m in modes]

    def marginal(self, modes: list[int]) -> dict[tuple[int, ...], float]:
        """The exact distribution of the occupations of *modes*, in that order."""
        n = _occupations().astype(int)
        result: dict[tuple[int, ...], float] = {}
        for index, p in enumerate(self.probabilities()):
            if p > 1e-15:
                key = tuple(int(n[index, m]) for m in modes)
                result[key] = result.get(key, 0.0) + float(p)
        return result
