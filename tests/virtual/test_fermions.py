"""The tweezer fermions against independent models and the conservation laws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from spooler.virtual.fermions import TweezerFermions


def test_one_fermion_hops_with_sin_squared() -> None:
    for theta in (0.3, 1.0, 2.5):
        tweezers = TweezerFermions()
        tweezers.load(2)  # site 1, spin up
        tweezers.fhop((2, 3, 4, 5), theta)
        moved = tweezers.marginal([2, 4])
        assert moved[(0, 1)] == pytest.approx(np.sin(theta) ** 2)
        assert moved[(1, 0)] == pytest.approx(np.cos(theta) ** 2)


def test_an_up_and_a_down_fermion_match_two_distinguishable_particles() -> None:
    """One fermion of each spin on two sites: the species are different particles, so the
    dimer is (site of up) x (site of down) with H = -J (X x 1 + 1 x X) + U (same site).
    The interleaved numbering puts the down mode of site 0 between the up modes: a missing
    Jordan-Wigner sign would show here."""
    j, u = 0.8, 1.7
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    same_site = np.diag([1.0, 0.0, 0.0, 1.0])
    hop = -j * (np.kron(x, np.eye(2)) + np.kron(np.eye(2), x)) / j  # per unit of theta
    psi = np.zeros(4, dtype=complex)
    psi[0b01] = 1.0  # up on site 0, down on site 1: index (site up, site down) = (0, 1)
    psi = expm(-1j * j * hop) @ psi
    psi = expm(-1j * u * same_site) @ psi
    psi = expm(-1j * j * hop) @ psi
    expected = np.abs(psi) ** 2

    tweezers = TweezerFermions()
    tweezers.load(0)  # site 0 up
    tweezers.load(3)  # site 1 down
    tweezers.fhop((0, 1, 2, 3), j)
    tweezers.fint(u)
    tweezers.fhop((0, 1, 2, 3), j)
    joint = tweezers.marginal([0, 2, 1, 3])  # up on 0, up on 1, down on 0, down on 1
    for site_up in (0, 1):
        for site_down in (0, 1):
            key = (int(site_up == 0), int(site_up == 1), int(site_down == 0), int(site_down == 1))
            assert joint.get(key, 0.0) == pytest.approx(expected[2 * site_up + site_down])


def test_every_gate_keeps_the_fermions_of_each_spin() -> None:
    rng = np.random.default_rng(3)
    tweezers = TweezerFermions()
    for mode in (0, 3, 4, 7):
        tweezers.load(mode)  # 2 up, 2 down
    for _ in range(20):
        gate = rng.integers(3)
        site = int(rng.integers(3))
        theta = float(rng.uniform(0, 2 * np.pi))
        if gate == 0:
            tweezers.fhop(tuple(range(2 * site, 2 * site + 4)), theta)
        elif gate == 1:
            tweezers.fint(theta)
        else:
            tweezers.fphase((2 * site, 2 * site + 1), theta)
        counts = tweezers.spin_counts()
        assert counts == {(2, 2): pytest.approx(1.0)}


def test_a_phase_alone_changes_no_occupation() -> None:
    tweezers = TweezerFermions()
    tweezers.load(1)
    tweezers.fhop((0, 1, 2, 3), 0.6)
    before = tweezers.marginal([1, 3])
    tweezers.fphase((0, 1), 1.3)
    tweezers.fint(0.4)
    assert tweezers.marginal([1, 3]) == pytest.approx(before)


def test_pauli_and_the_hop_wires_are_enforced() -> None:
    tweezers = TweezerFermions()
    tweezers.load(5)
    with pytest.raises(ValueError, match="Pauli"):
        tweezers.load(5)
    with pytest.raises(ValueError, match="two adjacent sites"):
        tweezers.fhop((0, 1, 4, 5), 1.0)
    assert tweezers.draw([5, 0], np.random.default_rng(0)) == [1, 0]
