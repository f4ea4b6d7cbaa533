"""The multi-wire spin register against a dense reference (scipy's expm on the product space)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from spooler.virtual.physics import LargeSpin
from spooler.virtual.spins import SpinRegister, states_of


def spin_operators(atoms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lx, Ly, Lz of a spin atoms/2 as qiskit-nature's SpinOp (the client's solver) has them:
    level k is m = l - k, ``Lz = diag(l, ..., -l)``, L+ raises m (level k to k - 1)."""
    length = atoms / 2
    m = length - np.arange(atoms + 1)
    raising = np.diag(np.sqrt(length * (length + 1) - m[1:] * (m[1:] + 1)), 1)
    return (raising + raising.T) / 2, (raising - raising.T) / 2j, np.diag(m)


def dense(atoms: list[int], gates: list[tuple[str, tuple[int, ...], float]]) -> np.ndarray:
    """The final state of *gates* on the product space, from first principles."""
    ops = [spin_operators(n) for n in atoms]

    def on(wire: int, op: np.ndarray) -> np.ndarray:
        out = np.eye(1)
        for w, n in enumerate(atoms):
            out = np.kron(out, op if w == wire else np.eye(n + 1))
        return out

    state = np.zeros(states_of(atoms), dtype=complex)
    state[0] = 1.0
    for name, wires, theta in gates:
        a = wires[0]
        lx, ly, lz = ops[a]
        if name == "rlx":
            h = on(a, lx)
        elif name == "rlz":
            h = on(a, lz)
        elif name == "rlz2":
            h = on(a, lz @ lz)
        else:
            b = wires[1]
            if name == "rlzlz":
                h = on(a, lz) @ on(b, ops[b][2])
            else:  # rlxly
                h = on(a, lx) @ on(b, ops[b][0]) + on(a, ly) @ on(b, ops[b][1])
        state = expm(-1j * theta * h) @ state
    return state


def register(atoms: list[int], gates: list[tuple[str, tuple[int, ...], float]]) -> SpinRegister:
    spins = SpinRegister()
    for wire, n in enumerate(atoms):
        spins.load(wire, n)
    for name, wires, theta in gates:
        getattr(spins, name)(*wires, theta)
    return spins


def random_circuit(
    rng: np.random.Generator, wires: int, length: int
) -> list[tuple[str, tuple[int, ...], float]]:
    gates: list[tuple[str, tuple[int, ...], float]] = []
    for _ in range(length):
        name = str(rng.choice(["rlx", "rlz", "rlz2", "rlxly", "rlzlz"]))
        first = int(rng.integers(wires - (1 if name in ("rlxly", "rlzlz") else 0)))
        pair = (first, first + 1) if name in ("rlxly", "rlzlz") else (first,)
        gates.append((name, pair, float(rng.uniform(0, 2 * np.pi))))
    return gates


@pytest.mark.parametrize("atoms", [[3, 4], [2, 1, 3], [1, 2, 2, 1]])
def test_random_circuits_match_the_dense_reference(atoms: list[int]) -> None:
    rng = np.random.default_rng(len(atoms))
    for _ in range(5):
        gates = random_circuit(rng, len(atoms), 10)
        expected = np.abs(dense(atoms, gates)) ** 2
        got = register(atoms, gates).probabilities(list(range(len(atoms))))
        np.testing.assert_allclose(got.ravel(), expected, atol=1e-10)


def test_one_wire_is_the_singlequdit_spin() -> None:
    spins = register([7], [("rlx", (0,), 0.7), ("rlz2", (0,), 0.3), ("rlx", (0,), 1.9)])
    alone = LargeSpin(7)
    alone.rlx(0.7)
    alone.rlz2(0.3)
    alone.rlx(1.9)
    np.testing.assert_allclose(spins.probabilities([0]), alone.up_count_probabilities())


def test_the_flip_flop_keeps_the_total_count_and_moves_atoms() -> None:
    spins = register([4, 6], [("rlx", (0,), 2.0), ("rlxly", (0, 1), 0.9)])
    before = register([4, 6], [("rlx", (0,), 2.0)]).probabilities([0, 1])
    after = spins.probabilities([0, 1])

    def total(p: np.ndarray) -> np.ndarray:
        k1, k2 = np.indices(p.shape)
        return np.bincount((k1 + k2).ravel(), weights=p.ravel())

    np.testing.assert_allclose(total(after), total(before), atol=1e-12)
    assert after[:, 0].sum() < before[:, 0].sum() - 0.1, "atoms flipped onto wire 1"


def test_probabilities_follow_the_order_asked_and_marginalise() -> None:
    spins = register([2, 3], [("rlx", (0,), np.pi)])  # wire 0: both atoms up
    assert spins.probabilities([1, 0])[0, 2] == pytest.approx(1.0)
    assert spins.probabilities([0])[2] == pytest.approx(1.0)
    assert spins.probabilities([3]).shape == (1,), "a wire with no atoms counts 0"
    assert spins.draw([0, 1, 3], np.random.default_rng(1)) == [2, 0, 0]


def test_the_limit_and_a_second_load_are_refused() -> None:
    spins = SpinRegister(states_max=100)
    spins.load(0, 9)
    with pytest.raises(ValueError, match="110 states exceed the virtual machine's limit of 100"):
        spins.load(1, 10)
    with pytest.raises(ValueError, match="loaded already"):
        spins.load(0, 3)
