from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from spooler.virtual.physics import LargeSpin


@pytest.mark.parametrize("atoms", [1, 2, 7, 100, 500])
@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 2, 2.0, math.pi])
def test_rlx_from_all_down_is_binomial(atoms: int, theta: float) -> None:
    spin = LargeSpin(atoms)
    spin.rlx(theta)
    expected = stats.binom.pmf(np.arange(atoms + 1), atoms, math.sin(theta / 2) ** 2)
    assert np.allclose(spin.up_count_probabilities(), expected, atol=1e-9)


def test_pi_pulse_flips_every_atom_and_rlz_alone_changes_nothing() -> None:
    spin = LargeSpin(100)
    spin.rlz(1.234)
    spin.rlz2(0.7)
    assert spin.up_count_probabilities()[0] == pytest.approx(1.0)
    spin.rlx(math.pi)
    assert spin.up_count_probabilities()[100] == pytest.approx(1.0)


def test_ramsey_fringe() -> None:
    # pi/2, a phase phi about z, pi/2: the upper-state probability per atom is cos(phi/2)^2.
    for phi in (0.0, math.pi / 3, math.pi):
        spin = LargeSpin(40)
        spin.rlx(math.pi / 2)
        spin.rlz(phi)
        spin.rlx(math.pi / 2)
        p = spin.up_count_probabilities()
        mean = float(np.arange(41) @ p) / 40
        assert mean == pytest.approx(math.cos(phi / 2) ** 2, abs=1e-9)


def test_a_gate_sequence_equals_matrix_exponentials() -> None:
    from scipy.linalg import expm

    # qiskit-nature's SpinOp, which the client's solver exponentiates: level k is m = l - k,
    # Z = diag(l, ..., -l), L+ raises m (from level k to k - 1), X = (L+ + L-)/2
    atoms = 6
    length = atoms / 2
    m = length - np.arange(atoms + 1)
    lz = np.diag(m)
    lplus = np.zeros((atoms + 1, atoms + 1))
    for k in range(1, atoms + 1):
        lplus[k - 1, k] = math.sqrt(length * (length + 1) - m[k] * (m[k] + 1))
    lx = (lplus + lplus.T) / 2
    reference = np.zeros(atoms + 1, dtype=complex)
    reference[0] = 1
    spin = LargeSpin(atoms)
    for gate, theta in [("rlx", 0.4), ("rlz2", 0.9), ("rlx", 1.3), ("rlz", 2.2), ("rlx", 0.7)]:
        generator = {"rlx": lx, "rlz": lz, "rlz2": lz @ lz}[gate]
        reference = expm(-1j * theta * generator) @ reference
        getattr(spin, gate)(theta)
    assert np.allclose(spin.state, reference, atol=1e-12)


def test_norm_is_kept() -> None:
    spin = LargeSpin(77)
    for theta in (0.1, 2.0, 5.0):
        spin.rlx(theta)
        spin.rlz2(theta)
    assert spin.up_count_probabilities().sum() == pytest.approx(1.0)
