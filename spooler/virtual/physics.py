"""The physics of the virtual singlequdit apparatus: one large spin of N atoms, evolved exactly.

N two-level atoms that are prepared together form a spin of length ``l = N/2`` in the
``N + 1`` states ``|l, m>``. The numbering is qiskit-cold-atom's (its ``SpinOp`` and
``SpinCircuitSolver``), so that a circuit gives here the distribution the client's own
simulator gives:

- level ``k = 0 .. N`` is the state ``m = l - k`` (``Lz = diag(l, l - 1, ..., -l)``);
- ``load`` prepares level 0, ``m = +l``: every atom in the state it is loaded in;
- a measurement gives the level ``k``, the number of atoms found in the other state (the
  camera images those), with probability ``|<k|psi>|^2``;
- ``rlx``, ``rlz`` and ``rlz2`` apply ``exp(-i theta Lx)``, ``exp(-i theta Lz)`` and
  ``exp(-i theta Lz^2)``, where ``Lx = (L+ + L-)/2`` is real with non-negative entries and
  ``L+`` raises ``m`` (lowers ``k``).

A rotation by theta about x from level 0 takes each atom to the other state with
probability ``sin(theta/2)^2``, independently: ``k`` is binomial, which the tests check.
``rlz`` has a sign that such a Rabi or Ramsey sequence does not show, but a twisted state
read out at an angle does: the tests check it against the client's solvers
(``tests/client/jobs``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["LargeSpin", "lz_diagonal"]

Complex = NDArray[np.complex128]
Real = NDArray[np.float64]


def lz_diagonal(atoms: int) -> Real:
    """Lz of each level k = 0 .. N of N atoms: ``m = N/2 - k``."""
    return atoms / 2 - np.arange(atoms + 1, dtype=np.float64)


@lru_cache(maxsize=8)
def _lx_eigen(atoms: int) -> tuple[Real, Complex]:
    """Eigenvalues and eigenvectors of Lx for N atoms, in the levels k (Lx is real, symmetric,
    tridiagonal: ``<k+1| Lx |k> = sqrt(l(l+1) - m(m-1)) / 2`` with ``m = l - k``)."""
    m = lz_diagonal(atoms)[:-1]  # the m of levels 0 .. N-1; L- |m> = sqrt(l(l+1) - m(m-1)) |m-1>
    length = atoms / 2
    ladder = np.sqrt(np.maximum(length * (length + 1) - m * (m - 1), 0.0))
    lx = np.diag(ladder / 2, -1) + np.diag(ladder / 2, 1)
    values, vectors = np.linalg.eigh(lx)
    return values, vectors.astype(np.complex128)


class LargeSpin:
    """The state of N atoms as one spin, in the levels k (``m = N/2 - k``); every gate is
    applied exactly."""

    def __init__(self, atoms: int) -> None:
        if atoms < 1:
            raise ValueError("a spin needs at least one atom")
        self.atoms = atoms
        self.m: Real = lz_diagonal(atoms)
        self.state: Complex = np.zeros(atoms + 1, dtype=np.complex128)
        self.state[0] = 1.0  # level 0: every atom in the state it is loaded in

    def rlx(self, theta: float) -> None:
        values, vectors = _lx_eigen(self.atoms)
        self.state = vectors @ (np.exp(-1j * theta * values) * (vectors.conj().T @ self.state))

    def rlz(self, theta: float) -> None:
        self.state = np.exp(-1j * theta * self.m) * self.state

    def rlz2(self, theta: float) -> None:
        self.state = np.exp(-1j * theta * self.m**2) * self.state

    def level_probabilities(self) -> Real:
        """P(level k), k = 0 .. N: k atoms found out of the loaded state."""
        probabilities = np.abs(self.state) ** 2
        return probabilities / probabilities.sum()  # type: ignore[no-any-return]

    # the name of earlier versions (headers copied from them call it)
    up_count_probabilities = level_probabilities
