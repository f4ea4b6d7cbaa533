"""The physics of the virtual singlequdit apparatus: one large spin of N atoms, evolved exactly.

N two-level atoms that are prepared together form a spin of length ``l = N/2``; the state
lives in the ``N + 1`` states ``|l, m>``, ``m = -l .. l``, where ``m + l`` atoms are in the
upper state. ``load`` prepares all atoms in the lower state (``m = -l``); ``rlx``, ``rlz`` and
``rlz2`` apply ``exp(-i theta Lx)``, ``exp(-i theta Lz)`` and ``exp(-i theta Lz^2)``; a
measurement counts the atoms in the upper state, with probability ``|<l, m|psi>|^2``.

A rotation by theta about x from all-down gives each atom the upper state with probability
``sin(theta/2)^2``, independently: the count is binomial, which the tests check.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["LargeSpin"]

Complex = NDArray[np.complex128]
Real = NDArray[np.float64]


@lru_cache(maxsize=8)
def _lx_eigen(atoms: int) -> tuple[Real, Complex]:
    """Eigenvalues and eigenvectors of Lx for N atoms (Lx is real, symmetric, tridiagonal)."""
    length = atoms / 2
    m = np.arange(-length, length)  # m for the ladder L+ |m> = sqrt(l(l+1) - m(m+1)) |m+1>
    ladder = np.sqrt(length * (length + 1) - m * (m + 1))
    lx = np.diag(ladder / 2, -1) + np.diag(ladder / 2, 1)
    values, vectors = np.linalg.eigh(lx)
    return values, vectors.astype(np.complex128)


class LargeSpin:
    """The state of N atoms as one spin; every gate is applied exactly."""

    def __init__(self, atoms: int) -> None:
        if atoms < 1:
            raise ValueError("a spin needs at least one atom")
        self.atoms = atoms
        self.m: Real = np.arange(atoms + 1, dtype=np.float64) - atoms / 2
        self.state: Complex = np.zeros(atoms + 1, dtype=np.complex128)
        self.state[0] = 1.0  # all atoms in the lower state

    def rlx(self, theta: float) -> None:
        values, vectors = _lx_eigen(self.atoms)
        self.state = vectors @ (np.exp(-1j * theta * values) * (vectors.conj().T @ self.state))

    def rlz(self, theta: float) -> None:
        self.state = np.exp(-1j * theta * self.m) * self.state

    def rlz2(self, theta: float) -> None:
        self.state = np.exp(-1j * theta * self.m**2) * self.state

    def up_count_probabilities(self) -> Real:
        """P(k atoms in the upper state), k = 0 .. N."""
        probabilities = np.abs(self.state) ** 2
        return probabilities / probabilities.sum()  # type: ignore[no-any-return]
